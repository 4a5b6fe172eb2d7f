package agent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// One value past a reader's limit must not make a whole pull reply, its
// batch-mates' receipts included, unreadable: besides nesting, readers
// limit numbers (Python's json, 3.11+ and the 3.7-3.10 security releases,
// refuses integers of more than 4,300 digits; Jackson numbers of more than
// 1,000 characters; Go's encoding/json, into an any, numbers out of a
// float64's range). Such a value goes as value_b64 (jsonenc.Portable), and
// Go and Python consumers read the reply, that value byte for byte.
// Before (found by review, twice), it went as itself.
func TestQueuePullReplyWithAnUnportableNumberIsReadable(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	for _, v := range []string{"1" + strings.Repeat("0", 5000), "1e400", `{"n":[-1E+400]}`} {
		t.Run(v[:min(len(v), 16)], func(t *testing.T) {
			dir := t.TempDir()
			ta := startAgent(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q"}))
			pushKey(t, ta.url, "t", "", `{"to":"a@example.com"}`)
			pushKey(t, ta.url, "t", "", v)
			q := ta.a.queues[0]
			waitFor(t, "both read", func() bool { r, _ := q.counts(); return r == 2 })
			resp, err := http.Post(ta.url+"/v1/queues/q/pull", "application/json", strings.NewReader(`{"max":10}`))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()

			var generic struct {
				Messages []struct {
					Receipt  string `json:"receipt"`
					Value    any    `json:"value"`
					ValueB64 string `json:"value_b64"`
				} `json:"messages"`
			}
			if err := json.Unmarshal(body, &generic); err != nil || len(generic.Messages) != 2 {
				t.Fatalf("Go's encoding/json reads the reply of 2 messages as %d: %v", len(generic.Messages), err)
			}
			if b, err := base64.StdEncoding.DecodeString(generic.Messages[1].ValueB64); err != nil || string(b) != v {
				t.Fatalf("the value comes back as %q (value %v): %v", b, generic.Messages[1].Value, err)
			}

			cmd := exec.Command(py, "-c", `import base64,json,sys
r = json.load(sys.stdin)
for m in r["messages"]:
    print(m["receipt"] != "", json.dumps(m["value"]) if "value" in m else base64.b64decode(m["value_b64"]).decode())`)
			cmd.Stdin = bytes.NewReader(body)
			out, err := cmd.CombinedOutput()
			if err != nil {
				lines := strings.Split(strings.TrimSpace(string(out)), "\n")
				t.Fatalf("a pull reply of 2 messages (%d bytes) is unreadable to Python's json: %v: %s", len(body), err, lines[len(lines)-1])
			}
			if want := "True {\"to\": \"a@example.com\"}\nTrue " + v + "\n"; string(out) != want {
				t.Fatalf("Python read:\n%.200s\nwant:\n%.200s", out, want)
			}
		})
	}
}
