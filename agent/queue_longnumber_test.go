package agent

import (
	"bytes"
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
// 1,000 characters). A value that is one such number goes as value_b64
// (jsonenc.Portable), and a Python consumer reads the reply, that value
// byte for byte. Before (found by review), it went as itself and Python
// could read no message of the reply.
func TestQueuePullReplyWithALongNumberIsReadableByPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	dir := t.TempDir()
	ta := startAgent(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q"}))
	pushKey(t, ta.url, "t", "", `{"to":"a@example.com"}`)
	long := "1" + strings.Repeat("0", 5000)
	pushKey(t, ta.url, "t", "", long)
	q := ta.a.queues[0]
	waitFor(t, "both read", func() bool { r, _ := q.counts(); return r == 2 })
	resp, err := http.Post(ta.url+"/v1/queues/q/pull", "application/json", strings.NewReader(`{"max":10}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
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
	want := "True {\"to\": \"a@example.com\"}\nTrue " + long + "\n"
	if string(out) != want {
		t.Fatalf("Python read:\n%.200s\nwant:\n%.200s", out, want)
	}
}
