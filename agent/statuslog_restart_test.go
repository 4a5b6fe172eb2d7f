package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// Guarantee 5 and decision (e): a message delivered while a stuck topic
// held the cursor below it reads delivered; when the backlog cap then
// drops it (the cursor jumps past it and records the drop), it still reads
// delivered, and after a restart too: the cursor passed it by a drop, not
// by a delivery, so the ahead log keeps it.
func TestAheadDeliveryPassedByADropStaysDeliveredAfterARestart(t *testing.T) {
	mem := &memSink{}
	mem.setFail(func(msgs []sink.Message) error {
		if msgs[0].Topic == "stuck" {
			return errTransient
		}
		return nil
	})
	dir := t.TempDir()
	opts := Options{Sinks: []SinkSpec{{
		Name: "mem", Sink: mem.sink(), MaxBacklogBytes: 8192, BacklogPolicy: "drop_oldest",
	}}}
	ta := startAgent(t, dir, opts)
	if r := do(t, "POST", ta.url+"/v1/topics/stuck", "", []byte("a"), nil); r.status != 202 {
		t.Fatalf("push: %+v", r)
	}
	var ids []string
	for range 60 {
		r := do(t, "POST", ta.url+"/v1/topics/ok", "", bytes.Repeat([]byte("o"), 500), nil)
		if r.status != 202 {
			t.Fatalf("push: %+v", r)
		}
		ids = append(ids, r.ids[0])
	}
	waitFor(t, "healthy topic delivered", func() bool { return len(mem.messages()) == len(ids) })
	f := ta.a.fwds[0]
	_, sid, _ := parseID(ids[0])
	waitFor(t, "the cap drops a delivered message", func() bool { return f.cursor.Dropped(sid.Seq) })
	if st := getStatus(t, ta, ids[0]); st.Status != "delivered" {
		t.Fatalf("before the restart: %+v", st)
	}
	ta.stop(t)

	ta = startAgent(t, dir, opts)
	if !ta.a.fwds[0].cursor.Dropped(sid.Seq) || ta.a.fwds[0].cursor.Acked() < sid.Seq {
		t.Fatalf("setup: cursor acked %d, dropped(%d)=%v", ta.a.fwds[0].cursor.Acked(), sid.Seq, ta.a.fwds[0].cursor.Dropped(sid.Seq))
	}
	if st := getStatus(t, ta, ids[0]); st.Status != "delivered" {
		t.Fatalf("the sink received %s (delivered ahead, then passed by a drop), status after a restart: %+v", ids[0], st)
	}
}

// Guarantee 5 across a restart: a message delivered ahead of the cursor is
// not sent again after the restart, nor dead-lettered (here it outlived a
// max age set at the restart: it would have been dead-lettered expired
// and read failed, and a replay would have delivered it twice).
func TestAheadDeliveryIsNeitherSentAgainNorDeadLetteredAfterARestart(t *testing.T) {
	mem := &memSink{}
	started := mem.stuckOn("slow")
	dir := t.TempDir()
	spec := SinkSpec{Name: "s", Sink: mem.sink()}
	ta := startAgent(t, dir, Options{Sinks: []SinkSpec{spec}})
	do(t, "POST", ta.url+"/v1/topics/slow", "", []byte("slow"), nil)
	<-started
	ahead := do(t, "POST", ta.url+"/v1/topics/other", "", []byte("ahead"), nil).ids[0]
	waitFor(t, "the delivery", func() bool { return getStatus(t, ta, ahead).Status == "delivered" })
	ta.stop(t)

	time.Sleep(300 * time.Millisecond)
	spec.MaxAge = 200 * time.Millisecond
	ta = startAgent(t, dir, Options{Sinks: []SinkSpec{spec}})
	if st := getStatus(t, ta, ahead); st.Status != "delivered" {
		t.Fatalf("status right after the restart: %+v", st)
	}
	waitFor(t, "the forwarder to resolve it again", func() bool {
		return ta.a.fwds[0].cursor.Acked() >= mustSeq(t, ahead)
	})
	if st := getStatus(t, ta, ahead); st.Status != "delivered" {
		t.Fatalf("the sink received %s, status after the restart: %+v", ahead, st)
	}
	if got := mem.ids(); len(got) != 1 {
		t.Fatalf("the sink received %d messages (%v), want the one delivered before the restart", len(got), got)
	}
}

func mustSeq(t *testing.T, id string) uint64 {
	t.Helper()
	_, sid, err := parseID(id)
	if err != nil {
		t.Fatal(err)
	}
	return sid.Seq
}

// A line torn by a crash or a short write at the end of
// delivered-ahead.<sink> ("2" of "25 1\n") is no delivery: the message
// with that sequence, which the sink never received, reads pending after
// the restart.
func TestTornAheadLogLineIsNotADelivery(t *testing.T) {
	mem := &memSink{}
	mem.stuckOn("never")
	dir := t.TempDir()
	opts := Options{Sinks: []SinkSpec{{Name: "s", Sink: mem.sink()}}}
	ta := startAgent(t, dir, opts)
	var ids []string
	for range 3 {
		ids = append(ids, do(t, "POST", ta.url+"/v1/topics/never", "", []byte("x"), nil).ids[0])
	}
	path := filepath.Join(ta.a.sp.Dir(), AheadFilePrefix+"s")
	ta.stop(t)

	// What a crash or a short write leaves: whole lines, then the start
	// of a line for a later sequence ("<seq>5 <epoch>\n" cut after its
	// first digits).
	_, sid, _ := parseID(ids[1])
	torn := strconv.FormatUint(sid.Seq, 10) // prefix of "<seq>5 <epoch>"
	if err := os.WriteFile(path, []byte("1000 "+strconv.FormatUint(uint64(sid.Epoch), 10)+"\n"+torn), 0o600); err != nil {
		t.Fatal(err)
	}
	ta = startAgent(t, dir, opts)
	n := len(mem.ids())
	if st := getStatus(t, ta, ids[1]); st.Status != "pending" {
		t.Fatalf("the sink never received %s (%d messages received), status %+v", ids[1], n, st)
	}
}
