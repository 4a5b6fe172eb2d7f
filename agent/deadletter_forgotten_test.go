package agent

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/spool"
)

// Decision (a): a dead letter forgotten by the bounded index, or discarded
// by the dead-letter log at its cap, never turns into `delivered`: the
// message reads `unknown` (reason deadletter_forgotten), also after a
// restart, and later messages stay exact. Before, both read `delivered`.
func TestForgottenDeadLetterIsNeverDelivered(t *testing.T) {
	old := dlIndexSize
	dlIndexSize = 3
	t.Cleanup(func() { dlIndexSize = old })
	dir := t.TempDir()
	openDL := func() *spool.Spool {
		// Room for about four 10 KB dead letters: older ones are discarded.
		dl, err := spool.Open(filepath.Join(dir, "deadletter"), spool.Options{Logger: quiet(), FullPolicy: spool.DropOldest,
			SegmentBytes: 8 << 10, MaxBytes: 48 << 10})
		if err != nil {
			t.Fatal(err)
		}
		return dl
	}
	mem := &memSink{}
	mem.setFail(func(msgs []sink.Message) error {
		if msgs[0].Topic == "bad" {
			return sink.Permanent(errors.New("invalid record"))
		}
		return nil
	})
	specs := []SinkSpec{{Name: "mem", Sink: mem.sink()}}
	ta := startAgent(t, dir, Options{DeadLetter: openDL(), Sinks: specs})
	var bad []string
	for i := range 8 {
		r := do(t, "POST", ta.url+"/v1/topics/bad", "", bytes.Repeat([]byte{byte('a' + i)}, 10000), nil)
		bad = append(bad, r.ids[0])
		waitFor(t, "dead letter", func() bool { return ta.a.stats().Sinks[0].BacklogMessages == 0 })
	}
	good := do(t, "POST", ta.url+"/v1/topics/good", "", []byte("g"), nil).ids[0]
	waitFor(t, "delivered", func() bool { return getStatus(t, ta, good).Status == "delivered" })

	check := func(when string) {
		t.Helper()
		for i, id := range bad {
			st := getStatus(t, ta, id)
			switch {
			case st.Status == "delivered":
				t.Fatalf("%s: dead-lettered message %d reads delivered: %+v", when, i, st)
			case i >= len(bad)-3 && st.Status != "failed" && when == "running":
				t.Fatalf("%s: message %d still in the index reads %+v", when, i, st)
			case st.Status == "unknown" && st.Sinks["mem"].Reason != "deadletter_forgotten":
				t.Fatalf("%s: message %d: %+v", when, i, st)
			}
		}
	}
	check("running")
	if st := getStatus(t, ta, bad[0]); st.Status != "unknown" {
		t.Fatalf("evicted: %+v", st)
	}
	ta.stop(t)

	// After a restart the index holds what the log kept; the watermark
	// file covers the rest.
	ta = startAgent(t, dir, Options{DeadLetter: openDL(), Sinks: specs})
	check("restarted")
	later := do(t, "POST", ta.url+"/v1/topics/good", "", []byte("g2"), nil).ids[0]
	waitFor(t, "later delivered", func() bool { return getStatus(t, ta, later).Status == "delivered" })
	if ta.a.dl.forgottenTotal() == 0 {
		t.Fatal("forgotten dead letters not counted")
	}
}
