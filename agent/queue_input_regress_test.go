package agent

import (
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
