package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// Guarantee 8 ("a stuck topic … costs its own budget, never another
// topic's"), for callback reports: a report is made ready when the sink's
// cursor passed its message, and the cursor sits at the stuck topic's
// oldest message. So the delivered messages of a healthy topic owe their
// reports, which fill the owed-report cap (CallbackMaxPending) and are
// dropped — although every one of those messages was delivered — while
// the stuck topic's own single report is the one that should wait.
func TestStuckTopicDoesNotCostOtherTopicsCallbacks(t *testing.T) {
	cbs := newCBServer(t)
	mem := &memSink{}
	mem.setFail(func(msgs []sink.Message) error {
		if msgs[0].Topic == "stuck" {
			return errTransient
		}
		return nil
	})
	ta := startAgent(t, t.TempDir(), Options{CallbackMaxPending: 8, Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	if r := do(t, "POST", ta.url+"/v1/topics/stuck", "", []byte("a"), nil); r.status != 202 {
		t.Fatalf("push: %+v", r)
	}
	hdr := map[string]string{"Sluice-Callback": cbs.srv.URL + "/cb"}
	// One push at a time, each waiting for its report: reports that are
	// sent never pile up past the cap, while reports held behind the stuck
	// topic do (the 9th push drops the oldest). A burst of pushes could
	// outrun the sender and fill the cap by speed alone.
	var ids []string
	deadline := time.Now().Add(20 * time.Second) // liveness bound
	for i := range 20 {
		r := do(t, "POST", ta.url+"/v1/topics/ok", "", []byte(fmt.Sprint(i)), hdr)
		if r.status != 202 {
			t.Fatalf("push: %+v", r)
		}
		ids = append(ids, r.ids[0])
		for !cbs.reported(r.ids[0]) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor(t, "healthy topic delivered", func() bool { return len(mem.messages()) == 20 })
	for len(cbs.byID()) < len(ids) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	whileStuck := len(cbs.byID())
	if whileStuck == len(ids) {
		return
	}
	// Let the stuck topic through: what the reports became.
	mem.setFail(nil)
	f := ta.a.fwds[0]
	waitFor(t, "cursor at the end", func() bool { return f.cursor.Acked() >= ta.sp.LastSeq() })
	time.Sleep(2 * time.Second) // reports in flight (not a timing claim)
	t.Fatalf("%d of %d delivered messages reported while another topic was stuck; after it recovered: %d reported, %d dropped (CallbackMaxPending 8)",
		whileStuck, len(ids), len(cbs.byID()), ta.a.cb.dropped.Get())
}
