package agent

import (
	"sync"
	"testing"

	"github.com/sluiceio/sluice/sink"
)

// A sink's message a drop skipped never reads delivered, also after 16
// later, separate drops with deliveries between them: the cursor's older
// drops are merged, and a message there with no other word of it reads
// unknown (drop_forgotten); the latest drop reads dropped, and the
// deliveries, remembered as such, delivered; also after a restart. Before
// (found by review), the oldest drop was forgotten and read delivered.
func TestSinkDroppedMessageNeverReadsDeliveredAfterSixteenMoreDrops(t *testing.T) {
	dir := t.TempDir()
	mem := &memSink{}
	var mu sync.Mutex
	held := map[string]bool{} // D's ids the sink refused
	mem.setFail(func(msgs []sink.Message) error {
		if msgs[0].Topic == "d" {
			mu.Lock()
			for _, m := range msgs {
				held[m.ID] = true
			}
			mu.Unlock()
			return errTransient // held until dropped
		}
		return nil
	})
	opts := Options{Sinks: []SinkSpec{{Name: "s", Sink: mem.sink()}}}
	ta := startAgent(t, dir, opts)
	f := ta.a.fwds[0]
	var drops, deliveries []string
	for range 17 {
		d := pushKey(t, ta.url, "d", "", `"D"`)
		// D held (tried and refused) before it is dropped: G is then
		// delivered ahead of a message the forwarder still holds. A drop
		// before the forwarder read D leaves G delivered in order, which
		// the merged drops cannot tell from dropped (a loaded machine did).
		waitFor(t, "D tried", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return held[d]
		})
		_, sid, _ := parseID(d)
		if _, err := f.cursor.SkipTo(sid.Seq, true); err != nil { // what a cap's drop does
			t.Fatal(err)
		}
		g := pushKey(t, ta.url, "g", "", `"G"`)
		waitFor(t, "G delivered", func() bool { return getStatus(t, ta, g).Status == "delivered" })
		_, gid, _ := parseID(g)
		waitFor(t, "the cursor past G", func() bool { return f.cursor.Acked() >= gid.Seq })
		drops, deliveries = append(drops, d), append(deliveries, g)
	}
	check := func(when string) {
		t.Helper()
		if st := getStatus(t, ta, drops[0]).Sinks["s"]; st.Status != "unknown" || st.Reason != "drop_forgotten" {
			t.Fatalf("%s: the first drop, after 16 later ones, reads %+v", when, st)
		}
		// Delivered while a held message kept the cursor below them, the
		// deliveries are remembered as such (deliveredAhead): exact, also
		// between the merged drops.
		for i, id := range deliveries {
			if st := getStatus(t, ta, id).Sinks["s"]; st.Status != "delivered" {
				t.Fatalf("%s: delivery %d reads %+v", when, i, st)
			}
		}
		if st := getStatus(t, ta, drops[16]).Sinks["s"]; st.Status != "dropped" {
			t.Fatalf("%s: the last drop reads %+v", when, st)
		}
		for i, id := range drops {
			if st := getStatus(t, ta, id).Sinks["s"]; st.Status == "delivered" {
				t.Fatalf("%s: drop %d reads %+v", when, i, st)
			}
		}
	}
	check("running")
	ta.stop(t)
	ta = startAgent(t, dir, opts)
	check("restarted")
}
