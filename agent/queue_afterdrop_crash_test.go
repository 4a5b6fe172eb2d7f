package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// B is acknowledged while A, below it, is still leased; then the
// spool-wide cap (SPOOL_FULL_POLICY=drop_oldest) skips the queue's cursor
// past both, the spool persists the cursor, and the agent is killed (-9)
// before the queue looked at the drop (its own 50 ms tick, or A's
// resolution). After the restart B, acknowledged, reads delivered: the
// queue log's ack of B, at or below the cursor but in a dropped range, goes
// into the delivered-after-drop set at open. Before (found by a third
// review), the open let go of that ack and B read dropped.
//
// The test holds q.mu (as the queue's tick would find it busy) while it
// runs the spool's cursor flush and takes the crash image, so that the
// two independent tickers land in that order.
func TestQueueAckedBeforeASpoolDropStaysDeliveredAfterAKill9(t *testing.T) {
	dir := t.TempDir()
	mem := &memSink{}
	so := spool.Options{MaxBytes: 256 << 10, SegmentBytes: 32 << 10, FullPolicy: spool.DropOldest}
	opts := func(d string) Options {
		return withQueues(t, d,
			Options{Sinks: []SinkSpec{{Name: "s", Topics: []string{"o"}, Sink: mem.sink()}}},
			QueueSpec{Name: "q", Topics: []string{"t"}, Visibility: time.Hour})
	}
	ta := startAgentSpool(t, dir, opts(dir), so)
	q := ta.a.queues[0]
	big := []byte(`"` + strings.Repeat("y", 30_000) + `"`)
	a := pushKey(t, ta.url, "t", "", `"A"`)
	b := pushKey(t, ta.url, "t", "", `"B"`)
	var rb string
	waitFor(t, "A and B pulled", func() bool {
		for _, m := range qcall(t, ta.url, "q", "pull", `{"max":2}`).Messages {
			if m.ID == b {
				rb = m.Receipt
			}
		}
		return rb != ""
	})
	if r := qcall(t, ta.url, "q", "ack", map[string]any{"receipts": []string{rb}}); r.Acked != 1 {
		t.Fatalf("ack B: %+v", r)
	}
	sb := mustSeq(t, b)
	var img string
	noted := false
	for try := 0; img == ""; try++ {
		if try > 200 {
			t.Fatal("the spool cap never dropped past B")
		}
		if r := do(t, "POST", ta.url+"/v1/topics/o", "", big, nil); r.status != 202 {
			t.Fatalf("push: %d %s", r.status, r.code)
		}
		q.mu.Lock()
		if q.cursor.Dropped(sb) {
			// The drop just happened; the queue has most likely not
			// looked yet (noted reports it): the spool's cursor tick
			// runs, then kill -9.
			noted = has(q.afterDrop, spool.ID{Seq: sb, Epoch: ta.a.sp.Epoch()})
			if err := ta.a.sp.Flush(); err != nil {
				q.mu.Unlock()
				t.Fatal(err)
			}
			img = crashImage(t, dir)
		}
		q.mu.Unlock()
	}
	if st := getStatus(t, ta, b).Sinks["q"]; st.Status != "delivered" {
		t.Fatalf("setup: running, B acknowledged reads %+v", st)
	}
	ta.stop(t)

	t.Logf("the queue had noted B before the crash: %t", noted)
	ta = startAgentSpool(t, img, opts(img), so)
	if st := getStatus(t, ta, b).Sinks["q"]; st.Status != "delivered" {
		t.Fatalf("after a kill -9, B (acknowledged before a drop_oldest skipped the queue past it, A unresolved below it) reads %q %+v; A reads %+v",
			st.Status, st, getStatus(t, ta, a).Sinks["q"])
	}
}
