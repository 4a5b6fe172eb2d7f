package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// The delivered-ahead log names records by "seq epoch". A spool recreated
// in place (its meta, WAL and cursors removed; the status logs beside
// them left) starts again at epoch 1, sequence 1: its records carry the
// very (seq, epoch) pairs the old log names. They must be sent all the
// same (at-least-once), not resolved by prune as delivered before.
func TestStaleAheadLogOfARecreatedSpoolSkipsNothing(t *testing.T) {
	started := make(chan struct{})
	var once sync.Once
	s1 := funcSink{write: func(ctx context.Context, msgs []sink.Message) error {
		if msgs[0].Topic == "slow" {
			once.Do(func() { close(started) })
			return errTransient
		}
		return nil
	}}
	dir := t.TempDir()
	ta := startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "s", Sink: s1}}})
	do(t, "POST", ta.url+"/v1/topics/slow", "", []byte("slow"), nil)
	<-started
	var old []string
	for i := range 5 {
		old = append(old, do(t, "POST", ta.url+"/v1/topics/ok", "", fmt.Appendf(nil, "old %d", i), nil).ids[0])
	}
	for _, id := range old {
		waitFor(t, "ahead delivery", func() bool { return getStatus(t, ta, id).Status == "delivered" })
	}
	spoolDir := ta.a.sp.Dir()
	ta.stop(t)
	aheadFile, _ := os.ReadFile(filepath.Join(spoolDir, AheadFilePrefix+"s"))
	if bytes.Count(aheadFile, []byte("\n")) < len(old) {
		t.Fatalf("setup: ahead log %q", aheadFile)
	}

	// The spool is recreated in place: identity, WAL and cursors go; the
	// status logs stay (nothing ties them to the spool they describe).
	for _, name := range []string{"meta", "wal", "cursors"} {
		if err := os.RemoveAll(filepath.Join(spoolDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	mem := &memSink{}
	ta = startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "s", Sink: mem.sink()}}})
	var fresh []string
	for i := range 6 {
		fresh = append(fresh, do(t, "POST", ta.url+"/v1/topics/ok", "", fmt.Appendf(nil, "new %d", i), nil).ids[0])
	}
	waitFor(t, "the new messages resolved", func() bool { return ta.a.fwds[0].cursor.Acked() >= mustSeq(t, fresh[len(fresh)-1]) })
	time.Sleep(50 * time.Millisecond)
	var got []string
	for _, m := range mem.messages() {
		got = append(got, m.ID)
	}
	var lost []string
	for _, id := range fresh {
		if !slices.Contains(got, id) {
			lost = append(lost, fmt.Sprintf("%s (status %s)", id, getStatus(t, ta, id).Status))
		}
	}
	if len(lost) > 0 {
		t.Fatalf("accepted after the spool was recreated, never sent to the sink nor dead-lettered: %v; the stale %s named them: %q",
			lost, AheadFilePrefix+"s", aheadFile)
	}
}

// A sink removed (its cursor removed at start with OrphanCursors "remove",
// its backlog given up) and added again under the same name gets a new
// cursor at the spool's end. The given-up backlog it never received reads
// dropped for it, not delivered (the cursor is past it, but was born after
// it); the other sink's status is untouched.
func TestSinkAddedAgainReadsItsGivenUpBacklogDropped(t *testing.T) {
	stuck := funcSink{write: func(ctx context.Context, msgs []sink.Message) error { return errTransient }}
	ok := funcSink{write: func(ctx context.Context, msgs []sink.Message) error { return nil }}
	dir := t.TempDir()
	ta := startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "a", Sink: stuck}, {Name: "b", Sink: ok}}})
	id := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("x"), nil).ids[0]
	waitFor(t, "b delivered", func() bool { return getStatus(t, ta, id).Sinks["b"].Status == "delivered" })
	ta.stop(t)

	ta = startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "b", Sink: ok}}, OrphanCursors: "remove"})
	ta.stop(t)

	ta = startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "a", Sink: stuck}, {Name: "b", Sink: ok}}})
	st := getStatus(t, ta, id)
	if st.Sinks["a"].Status != "dropped" || st.Sinks["b"].Status != "delivered" || st.Status != "dropped" {
		t.Fatalf("sink a never received %s (its backlog was given up), sink b did: status %+v", id, st)
	}
	later := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("y"), nil).ids[0]
	if st := getStatus(t, ta, later); st.Sinks["a"].Status != "pending" {
		t.Fatalf("a push after the sink was added again: %+v", st)
	}
}
