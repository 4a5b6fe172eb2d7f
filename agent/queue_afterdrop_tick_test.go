package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// B is acknowledged while A, below it, is still leased; then the spool-wide
// cap (SPOOL_FULL_POLICY=drop_oldest) skips the queue's cursor past both,
// and A's consumer acknowledges A right away. B was acknowledged and must
// read delivered (README: an acknowledged message stays delivered, also
// when a drop_oldest cap had skipped the queue past it).
//
// The delivered-after-drop fix (36d5763) had taken the noting of
// resolved, skipped slots out of advance(): B, resolved before the drop,
// was left to the next 50 ms tick, and A's acknowledgement before it let
// B's slot go unnoted; B read dropped for good (found by a second review).
func TestQueueAckedBeforeASpoolDropStaysDeliveredWhenTheOneBelowIsAckedAtOnce(t *testing.T) {
	dir := t.TempDir()
	mem := &memSink{}
	so := spool.Options{MaxBytes: 256 << 10, SegmentBytes: 32 << 10, FullPolicy: spool.DropOldest}
	ta := startAgentSpool(t, dir, withQueues(t, dir,
		Options{Sinks: []SinkSpec{{Name: "s", Topics: []string{"o"}, Sink: mem.sink()}}},
		QueueSpec{Name: "q", Topics: []string{"t"}, Visibility: time.Hour}), so)
	q := ta.a.queues[0]
	big := []byte(`"` + strings.Repeat("y", 30_000) + `"`)
	for iter := range 10 {
		a := pushKey(t, ta.url, "t", "", `"A"`)
		b := pushKey(t, ta.url, "t", "", `"B"`)
		var ra, rb string
		waitFor(t, "A and B pulled", func() bool {
			for _, m := range qcall(t, ta.url, "q", "pull", `{"max":2}`).Messages {
				switch m.ID {
				case a:
					ra = m.Receipt
				case b:
					rb = m.Receipt
				}
			}
			return ra != "" && rb != ""
		})
		if r := qcall(t, ta.url, "q", "ack", map[string]any{"receipts": []string{rb}}); r.Acked != 1 {
			t.Fatalf("ack B: %+v", r)
		}
		if st := getStatus(t, ta, b).Sinks["q"]; st.Status != "delivered" {
			t.Fatalf("setup: B acknowledged reads %+v", st)
		}
		sb := mustSeq(t, b)
		for n := 0; !q.cursor.Dropped(sb); n++ {
			if n > 200 {
				t.Fatal("the spool cap never dropped past B")
			}
			if r := do(t, "POST", ta.url+"/v1/topics/o", "", big, nil); r.status != 202 {
				t.Fatalf("push: %d %s", r.status, r.code)
			}
		}
		// The drop just happened: A's consumer acknowledges A now.
		if r := qcall(t, ta.url, "q", "ack", map[string]any{"receipts": []string{ra}}); r.Acked != 1 {
			t.Fatalf("ack A: %+v", r)
		}
		time.Sleep(150 * time.Millisecond) // a few maintenance ticks
		stB, stA := getStatus(t, ta, b).Sinks["q"], getStatus(t, ta, a).Sinks["q"]
		if stB.Status != "delivered" || stA.Status != "delivered" {
			t.Fatalf("iteration %d: B (acknowledged before the drop) reads %+v; A (acknowledged after it) reads %+v", iter, stB, stA)
		}
	}
}
