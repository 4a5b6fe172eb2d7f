package agent

import (
	"bytes"
	"context"
	"testing"

	"github.com/sluiceio/sluice/sink"
)

// A message dropped by a backlog cap while its batch is being written, and
// delivered all the same, reads delivered also when the write ends before
// the forwarder applied the drop (the cap trims the spool's cursor at
// once; the forwarder marks its in-flight items on the policies' next
// tick, up to 100 ms later). It read dropped then: delivered was not
// recorded for an item not yet marked. CI's loaded machine hit that window
// in TestDeliveredAfterDropSurvivesARestart.
func TestDeliveredBeforeTheForwarderAppliedItsDropReadsDelivered(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{})
	s := funcSink{write: func(ctx context.Context, msgs []sink.Message) error {
		if msgs[0].Topic == "slow" {
			close(started)
			<-release
		}
		return nil
	}}
	// The cap is the test's own: the policies never trim (no cap set), the
	// test trims the cursor as the cap would.
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "s", Sink: s}}})
	first := do(t, "POST", ta.url+"/v1/topics/slow", "", []byte("first"), nil).ids[0]
	<-started
	for range 8 {
		do(t, "POST", ta.url+"/v1/topics/other", "", bytes.Repeat([]byte("x"), 1000), nil)
	}
	f := ta.a.fwds[0]
	_, sid, _ := parseID(first)
	if _, err := f.cursor.TrimBacklog(f.cursor.BacklogBytes() - 100); err != nil || !f.cursor.Dropped(sid.Seq) {
		t.Fatalf("setup: trim %v, first dropped %v", err, f.cursor.Dropped(sid.Seq))
	}
	close(release) // the write ends now, before the policies' tick applies the drop
	waitFor(t, "first delivered after its drop", func() bool { return getStatus(t, ta, first).Status != "dropped" })
	if st := getStatus(t, ta, first); st.Status != "delivered" {
		t.Fatalf("delivered after its drop: %+v", st)
	}
}
