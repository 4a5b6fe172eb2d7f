package agent

import (
	"testing"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// Attempt counts across a checkpoint and a kill -9: two deliveries, a
// checkpoint, a third delivery (a D record after it), kill -9: the next
// delivery is attempt 4.
func TestQueueAttemptsSurviveACheckpointAndKill9(t *testing.T) {
	dir := t.TempDir()
	so := spool.Options{MaxBytes: 64 << 20, CursorSyncInterval: time.Hour}
	ta := startAgentSpool(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q"}), so)
	id := pushKey(t, ta.url, "t", "", `"x"`)
	pullOne := func(ta *testAgent) pulled {
		var m []pulled
		waitFor(t, "the message", func() bool {
			m = qcall(t, ta.url, "q", "pull", `{"max":1,"wait":"1s"}`).Messages
			return len(m) == 1
		})
		return m[0]
	}
	m := pullOne(ta)
	qcall(t, ta.url, "q", "nack", map[string]any{"receipts": []string{m.Receipt}})
	m = pullOne(ta)
	qcall(t, ta.url, "q", "nack", map[string]any{"receipts": []string{m.Receipt}})
	q := ta.a.queues[0]
	if err := q.qlog.compact(q.snapshot); err != nil {
		t.Fatal(err)
	}
	m = pullOne(ta)
	if m.Attempt != 3 {
		t.Fatalf("attempt %d", m.Attempt)
	}
	img := crashImage(t, dir)
	ta.stop(t)
	ta = startAgentSpool(t, img, withQueues(t, img, Options{}, QueueSpec{Name: "q"}), so)
	m = pullOne(ta)
	if m.ID != id || m.Attempt != 4 {
		t.Fatalf("after kill -9: %s attempt %d, want %s attempt 4", m.ID, m.Attempt, id)
	}
}

// A queue removed from the config (its cursor kept) and added again: the
// acknowledged message stays gone, the unacknowledged one comes back with
// its attempt count; a receipt from before is stale, not an error.
func TestQueueRemovedAndAddedAgainKeepsItsState(t *testing.T) {
	dir := t.TempDir()
	ta := startAgent(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q"}))
	a := pushKey(t, ta.url, "t", "", `"a"`)
	b := pushKey(t, ta.url, "t", "", `"b"`)
	var got []pulled
	waitFor(t, "2 messages", func() bool {
		got = append(got, qcall(t, ta.url, "q", "pull", `{"max":10}`).Messages...)
		return len(got) == 2
	})
	var ra, rb string
	for _, m := range got {
		if m.ID == a {
			ra = m.Receipt
		} else {
			rb = m.Receipt
		}
	}
	if r := qcall(t, ta.url, "q", "ack", map[string]any{"receipts": []string{ra}}); r.Acked != 1 {
		t.Fatalf("ack %+v", r)
	}
	ta.stop(t)
	ta = startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "mem", Sink: (&memSink{}).sink()}}}) // q gone from the config
	pushKey(t, ta.url, "t", "", `"c"`)                                                            // targets no queue
	ta.stop(t)
	ta = startAgent(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q"}))
	var back []pulled
	waitFor(t, "b back", func() bool {
		back = append(back, qcall(t, ta.url, "q", "pull", `{"max":10,"wait":"500ms"}`).Messages...)
		return len(back) > 0
	})
	back = append(back, qcall(t, ta.url, "q", "pull", `{"max":10,"wait":"300ms"}`).Messages...)
	if len(back) != 1 || back[0].ID != b || back[0].Attempt != 2 {
		t.Fatalf("after re-adding: %+v, want only %s attempt 2", back, b)
	}
	if r := qcall(t, ta.url, "q", "ack", map[string]any{"receipts": []string{rb, back[0].Receipt}}); r.status != 200 || r.Acked != 1 || len(r.Stale) != 1 {
		t.Fatalf("ack old+new receipt: %+v", r)
	}
	if st := getStatus(t, ta, a); st.Sinks["q"].Status != "delivered" {
		t.Errorf("a: %+v", st.Sinks)
	}
}
