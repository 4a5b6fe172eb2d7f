package agent

import (
	"testing"
	"time"
)

// A Sluice-Callback report for a message that a queue takes is sent once
// the queue resolved it (the consumer acknowledged it, or it was
// dead-lettered), as for any sink, not at once with the queue's status
// still pending. Found by the model test (callback-after-resolution).
func TestQueueCallbackAfterResolution(t *testing.T) {
	cbs := newCBServer(t)
	dir := t.TempDir()
	mem := &memSink{}
	opts := withQueues(t, dir, Options{CallbackBackoff: 5 * time.Millisecond, Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink(), Topics: []string{"t"}}}},
		QueueSpec{Name: "q", Topics: []string{"t", "u"}, MaxAttempts: 1, Visibility: time.Second})
	ta := startAgent(t, dir, opts)
	hdr := map[string]string{"Sluice-Callback": cbs.srv.URL + "/cb"}
	acked := do(t, "POST", ta.url+"/v1/topics/t", "", []byte(`"acked"`), hdr).ids[0] // mem and the queue
	dead := do(t, "POST", ta.url+"/v1/topics/u", "", []byte(`"dead"`), hdr).ids[0]   // the queue alone
	ahead := do(t, "POST", ta.url+"/v1/topics/u", "", []byte(`"ahead"`), hdr).ids[0] // acked while dead is leased

	var got []pulled
	waitFor(t, "three messages pulled", func() bool {
		got = append(got, qcall(t, ta.url, "q", "pull", `{"max":10}`).Messages...)
		return len(got) >= 3
	})
	time.Sleep(500 * time.Millisecond) // the dispatcher runs every 250 ms at least
	if reps := cbs.byID(); len(reps) != 0 {
		t.Fatalf("reports before the queue resolved anything: %+v", reps)
	}
	byID := map[string]pulled{}
	for _, m := range got {
		byID[m.ID] = m
	}
	// Acked ahead of an earlier leased message: its report comes although
	// the queue's cursor is held below it.
	qcall(t, ta.url, "q", "ack", map[string]any{"receipts": []string{byID[ahead].Receipt, byID[acked].Receipt}})
	waitFor(t, "reports of the acked messages", func() bool { return len(cbs.byID()) == 2 })
	for _, id := range []string{acked, ahead} {
		if r := cbs.byID()[id]; r.Status != "delivered" || r.Sinks["q"].Status != "delivered" {
			t.Fatalf("report of %s: %+v", id, r)
		}
	}
	if _, early := cbs.byID()[dead]; early {
		t.Fatalf("report of %s while it is leased", dead)
	}
	// MAX_ATTEMPTS 1: the lease runs out and the message is dead-lettered.
	waitFor(t, "the dead letter's report", func() bool { _, ok := cbs.byID()[dead]; return ok })
	if r := cbs.byID()[dead]; r.Status != "failed" || r.Sinks["q"].Reason != "max_attempts" {
		t.Fatalf("report of the dead letter: %+v", r)
	}
}

// Sluice-Ack: delivered on a queue's topic waits for the queue to resolve
// the message: a consumer leasing it meanwhile does not end the wait with
// status "in_flight" (the reply says delivered, failed, dropped or
// pending).
func TestQueueAckDeliveredWaitsForTheLease(t *testing.T) {
	dir := t.TempDir()
	ta := startAgent(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q"}))
	do(t, "POST", ta.url+"/v1/topics/t", "", []byte(`"first"`), nil)
	var first []pulled
	waitFor(t, "the first message", func() bool {
		first = qcall(t, ta.url, "q", "pull", `{"wait":"1s"}`).Messages
		return len(first) == 1
	})
	pulled := make(chan queueReply, 1)
	go func() {
		p := qcall(t, ta.url, "q", "pull", `{"wait":"10s"}`)
		// The ack of the first message makes the agent look at statuses
		// again while the second one is leased.
		qcall(t, ta.url, "q", "ack", map[string]any{"receipts": receipts(first)})
		pulled <- p
	}()
	time.Sleep(200 * time.Millisecond) // the pull waits
	r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte(`"x"`), map[string]string{"Sluice-Ack": "delivered", "Sluice-Timeout": "2s"})
	if p := <-pulled; len(p.Messages) != 1 {
		t.Fatalf("pull: %+v", p)
	}
	if r.status != 202 || r.ackStat != "pending" {
		t.Fatalf("push with Sluice-Ack: delivered while the message is leased: %d %q, want 202 pending (timed out)", r.status, r.ackStat)
	}
}
