package agent

import (
	"slices"
	"testing"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// TestIntactRecordAfterDamageReadsDeliveredOrDamagedNeverPending: the
// framing of record 2 (already delivered) is damaged in the tail segment.
// Record 3, pushed afterwards, is intact and the reader reads it; the sink
// refuses it once, so its lane holds it evicted and reads it again by
// sequence. The spool finds a record by parsing its segment from a sparse
// mark before it, over the damage: it cannot find record 3 and skips it as
// damaged. A known limit: the message is not delivered, and its status
// says so (unknown, spool_damaged), where it was pending forever (the
// read failed on every try and the lane never moved). Whatever the sink
// got, the status must say the same, and the cursor must move.
func TestIntactRecordAfterDamageReadsDeliveredOrDamagedNeverPending(t *testing.T) {
	dir := t.TempDir()
	g := newGateSink(false)
	ta := startAgent(t, dir, Options{Sinks: []SinkSpec{g.spec()}})
	r1 := do(t, "POST", ta.url+"/v1/topics/a", "", []byte("rev-one-MARK1"), nil)
	r2 := do(t, "POST", ta.url+"/v1/topics/a", "", []byte("rev-two-MARK2"), nil)
	waitFor(t, "1 and 2 delivered", func() bool { return len(g.values()) == 2 })
	damageFramingAfter(t, dir, "rev-one-MARK1") // record 2's frame: no reader needs it again
	g.setShut(true)
	r3 := do(t, "POST", ta.url+"/v1/topics/a", "", []byte("rev-three-MARK3"), nil)
	if r1.status != 202 || r2.status != 202 || r3.status != 202 {
		t.Fatalf("push: %+v %+v %+v", r1, r2, r3)
	}
	waitFor(t, "record 3 refused", func() bool { return g.tries() >= 1 })
	time.Sleep(300 * time.Millisecond) // a few retries (RetryMin 10ms), each reloading record 3
	g.setShut(false)
	f := ta.a.fwds[0]
	waitFor(t, "cursor past record 3", func() bool { return f.cursor.Acked() >= ta.sp.LastSeq() })
	delivered := g.values()
	st := getStatus(t, ta, r3.ids[0])
	switch {
	case slices.Contains(delivered, "rev-three-MARK3"):
		if st.Status != "delivered" {
			t.Errorf("record 3 was delivered, its status %+v", st)
		}
	case st.Status != "unknown" || st.Sinks["mem"].Reason != "spool_damaged" || !ta.sp.Lost(mustSID(t, ta, r3.ids[0])):
		t.Errorf("record 3 was not delivered (sink got %q), its status %+v, lost %v: want unknown (spool_damaged)",
			delivered, st, ta.sp.Lost(mustSID(t, ta, r3.ids[0])))
	}
}

func mustSID(t *testing.T, ta *testAgent, id string) (sid spool.ID) {
	t.Helper()
	_, sid, err := parseID(id)
	if err != nil {
		t.Fatal(err)
	}
	return sid
}
