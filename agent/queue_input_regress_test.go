package agent

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Found by an adversarial review of the pull queues: request bodies and
// message values.

// A body that is not exactly one JSON object is 400 and changes nothing.
// encoding/json decodes null into the request struct without an error, so
// decodeStrict checks for an object first; before, a pull with the body
// null leased a message.
func TestQueueNullBodyIsRefused(t *testing.T) {
	dir := t.TempDir()
	ta := startAgent(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q"}))
	id := pushKey(t, ta.url, "t", "", `{"n":1}`)
	q := ta.a.queues[0]
	waitFor(t, "the message read by the queue", func() bool { r, _ := q.counts(); return r == 1 })

	r := qcall(t, ta.url, "q", "pull", `null`)
	if r.status != 400 {
		_, inFlight := q.counts()
		t.Fatalf("pull with the body null (not a JSON object): %d, %d messages handed out (%d in flight), want 400 changing nothing",
			r.status, len(r.Messages), inFlight)
	}
	if st := getStatus(t, ta, id); st.Sinks["q"].Status != "pending" {
		t.Fatalf("after a refused pull the message is %q, want pending", st.Sinks["q"].Status)
	}
}

// A message value that is one JSON document goes into the pull reply as
// it is, else as value_b64. encoding/json accepts documents nested up to
// 10,000 levels (json.Valid included) and the reply wraps the value three
// levels deeper: a value nested 9,999 deep made the whole reply
// undecodable by encoding/json, `sluice queue pull` and the README's Go
// worker loop included, so every message leased with it lost its receipt
// and came back with a higher attempt count. Values nested more than
// jsonenc.MaxValueDepth deep now go as value_b64.
func TestQueueDeepJSONValueKeepsThePullReplyDecodable(t *testing.T) {
	dir := t.TempDir()
	ta := startAgent(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q"}))
	deep := strings.Repeat("[", 9999) + strings.Repeat("]", 9999)
	if !json.Valid([]byte(deep)) {
		t.Fatal("the value is not valid JSON for encoding/json")
	}
	pushKey(t, ta.url, "t", "", `{"innocent":1}`)
	pushKey(t, ta.url, "t", "", deep)
	q := ta.a.queues[0]
	waitFor(t, "both read", func() bool { r, _ := q.counts(); return r == 2 })

	resp, err := http.Post(ta.url+"/v1/queues/q/pull", "application/json", strings.NewReader(`{"max":10}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var v struct{ Messages []json.RawMessage } // what `sluice queue pull` decodes
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("pull reply (%d bytes, 2 messages leased) cannot be decoded by encoding/json: %v", len(raw), err)
	}
	if len(v.Messages) != 2 {
		t.Fatalf("%d messages", len(v.Messages))
	}
	var m struct {
		Value    json.RawMessage `json:"value"`
		ValueB64 []byte          `json:"value_b64"`
	}
	if err := json.Unmarshal(v.Messages[1], &m); err != nil || m.Value != nil || string(m.ValueB64) != deep {
		t.Fatalf("the deep value: err %v, value %.20q, value_b64 %d bytes; want it as value_b64, byte for byte", err, m.Value, len(m.ValueB64))
	}
}
