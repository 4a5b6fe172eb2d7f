package agent

import (
	"testing"
	"time"
)

// A receipt of a lease from before a restart, presented after the message
// was handed to another consumer, neither acks, nacks nor extends the new
// lease (lease_lost, not already_done), and the new holder's ack works
// (a review's test; it held).
func TestQueueReceiptFromBeforeARestartDoesNotTouchTheNewLease(t *testing.T) {
	dir := t.TempDir()
	opts := func() Options { return withQueues(t, dir, Options{}, QueueSpec{Name: "q", Visibility: time.Hour}) }
	ta := startAgent(t, dir, opts())
	pushKey(t, ta.url, "t", "", `"A"`)
	var old []pulled
	waitFor(t, "A pulled", func() bool { old = qcall(t, ta.url, "q", "pull", `{"max":1}`).Messages; return len(old) == 1 })
	ta.stop(t)

	ta = startAgent(t, dir, opts())
	var cur []pulled
	waitFor(t, "A pulled again", func() bool { cur = qcall(t, ta.url, "q", "pull", `{"max":1}`).Messages; return len(cur) == 1 })
	if cur[0].Attempt != 2 {
		t.Fatalf("attempt %d after a restart, want 2", cur[0].Attempt)
	}
	for _, op := range []struct{ name, body string }{
		{"nack", `{"receipts":["` + old[0].Receipt + `"]}`},
		{"extend", `{"receipts":["` + old[0].Receipt + `"],"visibility":"1s"}`},
		{"ack", `{"receipts":["` + old[0].Receipt + `","` + old[0].Receipt + `"]}`},
	} {
		r := qcall(t, ta.url, "q", op.name, op.body)
		if r.status != 200 || r.Nacked+r.Extended+r.Acked != 0 || len(r.Stale) == 0 {
			t.Fatalf("%s with the old receipt: %+v", op.name, r)
		}
		for _, s := range r.Stale {
			if s.Reason != receiptLeaseLost {
				t.Fatalf("%s with the old receipt: %+v, want lease_lost", op.name, r)
			}
		}
	}
	if st := getStatus(t, ta, cur[0].ID); st.Sinks["q"].Status != "in_flight" {
		t.Fatalf("A after the old receipt's calls: %+v", st)
	}
	if r := qcall(t, ta.url, "q", "ack", map[string]any{"receipts": receipts(cur)}); r.Acked != 1 {
		t.Fatalf("the current holder's ack: %+v", r)
	}
}
