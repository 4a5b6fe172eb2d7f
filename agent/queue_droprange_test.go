package agent

import (
	"bytes"
	"testing"
	"time"
)

// A message a drop_oldest cap skipped never reads delivered, also after 16
// later, separate drops: the cursor's older drops are merged
// (spool.TestOldDropsAreMergedNotForgotten) and X reads unknown
// (drop_forgotten). Before (found by review), the oldest range was let go
// and X, never handed out after the restart and never acknowledged, read
// delivered: the cursor is past it. The latest drop's message, acknowledged
// after the drop, reads delivered.
func TestQueueDroppedMessageNeverReadsDeliveredAfterSixteenMoreDrops(t *testing.T) {
	dir := t.TempDir()
	mem := &memSink{}
	opts := func() Options {
		return withQueues(t, dir,
			Options{Sinks: []SinkSpec{{Name: "s", Topics: []string{"o"}, Sink: mem.sink()}}},
			QueueSpec{Name: "q", Topics: []string{"t"}, MaxBacklogBytes: 1 << 20, BacklogPolicy: "drop_oldest", Visibility: time.Hour})
	}
	big := func(ta *testAgent) {
		t.Helper()
		for range 2 {
			if r := do(t, "POST", ta.url+"/v1/topics/o", "", bytes.Repeat([]byte("y"), 800_000), nil); r.status != 202 {
				t.Fatalf("push: %d %s", r.status, r.code)
			}
		}
	}
	ta := startAgent(t, dir, opts())
	x := pushKey(t, ta.url, "t", "", `"X"`)
	big(ta)
	waitFor(t, "X dropped", func() bool { return ta.a.queues[0].cursor.Dropped(mustSeq(t, x)) })
	ta.stop(t)

	ta = startAgent(t, dir, opts())
	q := ta.a.queues[0]
	if st := getStatus(t, ta, x); st.Sinks["q"].Status != "dropped" {
		t.Fatalf("setup: X reads %+v after the restart, want dropped", st)
	}
	var last string
	for k := 1; k <= 16; k++ {
		y := pushKey(t, ta.url, "t", "", `"Y"`)
		last = y
		big(ta)
		waitFor(t, "Y dropped", func() bool { return q.cursor.Dropped(mustSeq(t, y)) })
		var m []pulled
		waitFor(t, "Y pulled", func() bool { m = qcall(t, ta.url, "q", "pull", `{"max":1}`).Messages; return len(m) == 1 })
		if r := qcall(t, ta.url, "q", "ack", map[string]any{"receipts": receipts(m)}); r.Acked != 1 {
			t.Fatalf("ack Y: %+v", r)
		}
		waitFor(t, "the queue's cursor at the end", func() bool { return q.cursor.Acked() == ta.a.sp.LastSeq() })
	}
	if st := getStatus(t, ta, x).Sinks["q"]; st.Status != "unknown" || st.Reason != "drop_forgotten" {
		t.Fatalf("X, dropped by the cap and never acknowledged, reads %+v after 16 later drops", st)
	}
	if st := getStatus(t, ta, last).Sinks["q"]; st.Status != "delivered" {
		t.Fatalf("the last Y, acknowledged after its drop, reads %+v", st)
	}
}
