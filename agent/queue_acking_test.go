package agent

import (
	"testing"
	"time"
)

// findLocked's qAcking case: while an ack is being written, the
// same receipt in another ack, a nack or an extend is already_done; when
// that write then fails, the first ack gets the error, nothing is counted
// as acknowledged, and the message is handed out again when its lease
// ends (README: "should that write fail, the first call gets the error
// and the message is handed out again when its lease ends").
func TestQueueDuplicatesDuringAFailingAck(t *testing.T) {
	dir := t.TempDir()
	ta := startAgent(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q", Visibility: time.Second}))
	q := ta.a.queues[0]
	id := pushKey(t, ta.url, "t", "", `{"n":1}`)
	var m []pulled
	waitFor(t, "the message pulled", func() bool {
		m = qcall(t, ta.url, "q", "pull", `{"max":1,"visibility":"2s"}`).Messages
		return len(m) == 1
	})
	rc := m[0].Receipt
	body := map[string]any{"receipts": []string{rc}}

	// Hold the ack's log write (a checkpoint's lock), then make it fail.
	q.qlog.mu.Lock()
	first := make(chan queueReply, 1)
	go func() { first <- qcall(t, ta.url, "q", "ack", body) }()
	waitFor(t, "the first ack writing", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		e := q.entries[mustSeq(t, id)]
		return e != nil && e.state == qAcking
	})
	if st := getStatus(t, ta, id); st.Sinks["q"].Status != "in_flight" {
		t.Errorf("while its ack is written the message reads %q, want in_flight", st.Sinks["q"].Status)
	}
	for op, b := range map[string]any{"ack": body, "nack": body, "extend": map[string]any{"receipts": []string{rc}, "visibility": "1h"}} {
		r := qcall(t, ta.url, "q", op, b)
		if r.status != 200 || len(r.Stale) != 1 || r.Stale[0].Reason != "already_done" {
			t.Errorf("%s of the receipt being acked: %+v, want stale already_done", op, r)
		}
	}
	q.qlog.sp.Close() // the write fails
	q.qlog.mu.Unlock()
	if r := <-first; r.status == 200 {
		t.Fatalf("the ack whose write failed: %+v", r)
	}
	if n := q.m.acked.Get(); n != 0 {
		t.Errorf("sluice_queue_acked_total = %d after the only ack failed", n)
	}
	if st := getStatus(t, ta, id); st.Sinks["q"].Status != "in_flight" {
		t.Errorf("after the failed ack the message reads %q, want in_flight (its lease runs on)", st.Sinks["q"].Status)
	}
	// The extend told already_done did not take effect: the 2 s lease ends
	// and the message comes back.
	var again []pulled
	waitFor(t, "the message handed out again", func() bool {
		again = qcall(t, ta.url, "q", "pull", `{"max":1,"wait":"1s"}`).Messages
		return len(again) == 1
	})
	if again[0].ID != id || again[0].Attempt != 2 {
		t.Fatalf("handed out again: %+v", again[0])
	}
	// The old receipt is now lease_lost, not already_done.
	if r := qcall(t, ta.url, "q", "ack", body); len(r.Stale) != 1 || r.Stale[0].Reason != "lease_lost" {
		t.Errorf("the first lease's receipt after the message came back: %+v, want lease_lost", r)
	}
}
