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

	"github.com/sluiceio/sluice/sink"
)

// Decision (e) across a restart: a message dropped by a backlog policy
// while its batch was being written, and delivered all the same, still
// reads delivered after the agent restarted (the delivered-after-drop set
// is kept in the spool directory), and a message dropped for good still
// reads dropped.
func TestDeliveredAfterDropSurvivesARestart(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	started := make(chan struct{})
	var mu sync.Mutex
	var got []string
	s := funcSink{write: func(ctx context.Context, msgs []sink.Message) error {
		if msgs[0].Topic == "slow" {
			once.Do(func() { close(started) })
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		mu.Lock()
		for _, m := range msgs {
			got = append(got, m.ID)
		}
		mu.Unlock()
		return nil
	}}
	dir := t.TempDir()
	opts := Options{Sinks: []SinkSpec{{Name: "s", Sink: s, MaxBacklogBytes: 4096, BacklogPolicy: "drop_oldest"}}}
	ta := startAgent(t, dir, opts)
	first := do(t, "POST", ta.url+"/v1/topics/slow", "", []byte("first"), nil).ids[0]
	<-started
	var others []string
	for range 20 {
		others = append(others, do(t, "POST", ta.url+"/v1/topics/other", "", bytes.Repeat([]byte("x"), 1000), nil).ids...)
	}
	_, sid, _ := parseID(first)
	waitFor(t, "the drop", func() bool { return ta.a.fwds[0].cursor.Dropped(sid.Seq) })
	close(release)
	waitFor(t, "the delivery", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0 && got[0] == first
	})
	waitFor(t, "the status", func() bool { return getStatus(t, ta, first).Status == "delivered" })
	var dropped string // one of the others the policy dropped for good
	for _, id := range others {
		if getStatus(t, ta, id).Status == "dropped" {
			dropped = id
			break
		}
	}
	if dropped == "" {
		t.Fatal("the backlog cap dropped none of the other messages")
	}
	ta.stop(t)

	ta = startAgent(t, dir, opts)
	if st := getStatus(t, ta, first); st.Status != "delivered" {
		t.Fatalf("delivered after its drop, status after a restart %+v", st)
	}
	if st := getStatus(t, ta, dropped); st.Status != "dropped" {
		t.Fatalf("dropped message after a restart: %+v", st)
	}
}

// Guarantee 5 and decision (e) across a restart: a message delivered while
// another topic held the sink's cursor below it reads delivered, and still
// does after a restart, also when a backlog cap then drops it before the
// forwarder sends it again (the delivered-ahead set is kept in the spool
// directory, written within 50 ms of each delivery and at shutdown).
func TestDeliveredAheadSurvivesARestartAndADrop(t *testing.T) {
	mem := &memSink{}
	started := mem.stuckOn("slow")
	dir := t.TempDir()
	spec := SinkSpec{Name: "s", Sink: mem.sink(), MaxBacklogBytes: 4096, BacklogPolicy: "drop_oldest"}
	ta := startAgent(t, dir, Options{Sinks: []SinkSpec{spec}})
	do(t, "POST", ta.url+"/v1/topics/slow", "", []byte("slow"), nil)
	<-started
	ahead := do(t, "POST", ta.url+"/v1/topics/other", "", []byte("ahead"), nil).ids[0]
	waitFor(t, "the delivery", func() bool { return slices.Contains(mem.ids(), ahead) })
	// The sink has it; the forwarder records the delivery when the write
	// returns.
	waitFor(t, "delivered while the cursor was held below it", func() bool { return getStatus(t, ta, ahead).Status == "delivered" })
	_, sid, _ := parseID(ahead)
	path := filepath.Join(ta.a.sp.Dir(), AheadFilePrefix+"s")
	waitFor(t, "the delivered-ahead log", func() bool { // before any shutdown: what a kill -9 finds
		b, _ := os.ReadFile(path)
		return bytes.Contains(b, fmt.Appendf(nil, "%d %d\n", sid.Seq, sid.Epoch))
	})
	ta.stop(t)

	// Now nothing gets through, and pushes past the cap drop the oldest,
	// the delivered message among them.
	spec.Sink = funcSink{write: func(ctx context.Context, msgs []sink.Message) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	ta = startAgent(t, dir, Options{Sinks: []SinkSpec{spec}})
	if st := getStatus(t, ta, ahead); st.Status != "delivered" {
		t.Fatalf("delivered ahead of the cursor, status after a restart: %+v", st)
	}
	var later []string
	for range 20 {
		later = append(later, do(t, "POST", ta.url+"/v1/topics/fill", "", bytes.Repeat([]byte("x"), 1000), nil).ids...)
	}
	waitFor(t, "the drop", func() bool { return ta.a.fwds[0].cursor.Dropped(sid.Seq) })
	if st := getStatus(t, ta, ahead); st.Status != "delivered" {
		t.Fatalf("delivered before the restart, dropped after it: status %+v", st)
	}
	if st := getStatus(t, ta, later[0]); st.Status != "dropped" { // the oldest push since: never delivered
		t.Fatalf("a message dropped for good: %+v", st)
	}
}
