package agent

import (
	"bytes"
	"testing"
	"time"
)

// A and B are leased; a drop_oldest cap skips the queue's cursor past both
// while their consumers hold them; B's consumer acknowledges it (before or
// after the drop), A's does not (A holds the queue's acknowledgement of
// the cursor below B). B reads delivered, also after a restart (README:
// "An acknowledged message stays delivered after a restart ... when a
// drop_oldest cap had skipped the queue past it"). Before (found by
// review), B went into the delivered-after-drop set only when the cursor's
// acknowledgement reached it, which A held back past the restart, and the
// queue log let go of its acknowledgement at the next start (at or below
// the cursor the drop had moved): B read dropped.
func TestQueueAckedAfterADropAboveAnUnresolvedOneReadsDelivered(t *testing.T) {
	for _, ackFirst := range []bool{false, true} {
		name := "ack after the drop"
		if ackFirst {
			name = "ack before the drop"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			mem := &memSink{}
			opts := func() Options {
				return withQueues(t, dir,
					Options{Sinks: []SinkSpec{{Name: "s", Topics: []string{"o"}, Sink: mem.sink()}}},
					QueueSpec{Name: "q", Topics: []string{"t"}, MaxBacklogBytes: 1 << 20, BacklogPolicy: "drop_oldest", Visibility: time.Hour})
			}
			ta := startAgent(t, dir, opts())
			q := ta.a.queues[0]
			a := pushKey(t, ta.url, "t", "", `"A"`)
			b := pushKey(t, ta.url, "t", "", `"B"`)
			var m []pulled
			waitFor(t, "A and B pulled", func() bool {
				m = append(m, qcall(t, ta.url, "q", "pull", `{"max":2}`).Messages...)
				return len(m) == 2
			})
			var rb string
			for _, x := range m {
				if x.ID == b {
					rb = x.Receipt
				}
			}
			ack := func() {
				if r := qcall(t, ta.url, "q", "ack", map[string]any{"receipts": []string{rb}}); r.Acked != 1 {
					t.Fatalf("ack B: %+v", r)
				}
			}
			if ackFirst {
				ack()
			}
			for range 2 {
				if r := do(t, "POST", ta.url+"/v1/topics/o", "", bytes.Repeat([]byte("y"), 800_000), nil); r.status != 202 {
					t.Fatalf("push: %d %s", r.status, r.code)
				}
			}
			waitFor(t, "drop_oldest skips the queue's cursor past B", func() bool { return q.cursor.Dropped(mustSeq(t, b)) })
			if !ackFirst {
				ack()
			}
			if st := getStatus(t, ta, b); st.Sinks["q"].Status != "delivered" {
				t.Fatalf("running: B acknowledged reads %+v", st)
			}
			ta.stop(t)

			ta = startAgent(t, dir, opts())
			if st := getStatus(t, ta, b); st.Sinks["q"].Status != "delivered" {
				t.Fatalf("after a restart, B (skipped by drop_oldest while leased, acknowledged; A unresolved below it) reads %q: %+v",
					st.Sinks["q"].Status, st)
			}
			if st := getStatus(t, ta, a); st.Sinks["q"].Status == "delivered" {
				t.Fatalf("after a restart, A (never acknowledged) reads %+v", st)
			}
		})
	}
}
