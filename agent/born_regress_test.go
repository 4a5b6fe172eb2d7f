package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/spool"
)

// Sink a is added to a deployment whose spool holds
// records (its cursor is born at 10), the agent was killed before those
// were synced (SPOOL_SYNC=interval), and the machine crashes before the
// next sync: records 6..10 are lost, the cursor file (synced at creation)
// is not. The next start moves the cursor back to the tail (acked 5) and
// born with it: a new push reusing sequence 6 (a later epoch), sent to a
// and acknowledged by it, reads delivered for a (Sluice-Ack: delivered
// too), not dropped. Sink a existed all along since the crash.
func TestCutTailBelowBornReadsDelivered(t *testing.T) {
	ok := funcSink{write: func(ctx context.Context, msgs []sink.Message) error { return nil }}
	dir := t.TempDir()
	ta := startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "b", Sink: ok}}})
	for i := range 10 {
		pushKey(t, ta.url, "t", "", fmt.Sprintf(`{"n":%d}`, i))
	}
	ta.stop(t)

	ta = startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "a", Sink: ok}, {Name: "b", Sink: ok}}})
	if got := ta.a.fwds[0].cursor.Born(); got != 10 {
		t.Fatalf("a born %d", got)
	}
	img := crashImage(t, dir) // the machine crash, after a's cursor file was written
	ta.stop(t)
	cutSpoolTail(t, img, 5) // records 6..10 were not synced yet

	ta = startAgent(t, img, Options{Sinks: []SinkSpec{{Name: "a", Sink: ok}, {Name: "b", Sink: ok}}})
	r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte(`"new"`), map[string]string{"Sluice-Ack": "delivered", "Sluice-Timeout": "5s"})
	id := r.ids[0]
	waitFor(t, "a's cursor past the new push", func() bool { return ta.a.fwds[0].cursor.Acked() >= 6 })
	st := getStatus(t, ta, id)
	if r.ackStat != "delivered" || st.Status != "delivered" || st.Sinks["a"].Status != "delivered" {
		t.Fatalf("push %s (seq 6 of epoch %d, after a's cursor existed) delivered to a and b: Sluice-Ack answered %q, status %+v (a born %d, last %d)",
			id, ta.a.sp.Epoch(), r.ackStat, st, ta.a.fwds[0].cursor.Born(), ta.a.sp.LastSeq())
	}
}

// Queues as sinks: a queue removed (its cursor removed at start, OrphanCursors "remove") and
// added again starts at the spool's end like a sink, and never hands the
// given-up message out; its status must read dropped, not delivered.
func TestQueueAddedAgainReadsGivenUpBacklogDropped(t *testing.T) {
	ok := funcSink{write: func(ctx context.Context, msgs []sink.Message) error { return nil }}
	dir := t.TempDir()
	ta := startAgent(t, dir, withQueues(t, dir, Options{Sinks: []SinkSpec{{Name: "b", Sink: ok}}}, QueueSpec{Name: "q", Topics: []string{"t"}}))
	id := pushKey(t, ta.url, "t", "", `"m"`)
	waitFor(t, "b delivered", func() bool { return getStatus(t, ta, id).Sinks["b"].Status == "delivered" })
	if st := getStatus(t, ta, id); st.Sinks["q"].Status != "pending" {
		t.Fatalf("before: %+v", st)
	}
	ta.stop(t)

	ta = startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "b", Sink: ok}}, OrphanCursors: "remove"})
	ta.stop(t)

	ta = startAgent(t, dir, withQueues(t, dir, Options{Sinks: []SinkSpec{{Name: "b", Sink: ok}}}, QueueSpec{Name: "q", Topics: []string{"t"}}))
	var got []pulled
	for range 5 {
		got = append(got, qcall(t, ta.url, "q", "pull", `{"max":10}`).Messages...)
		time.Sleep(100 * time.Millisecond)
	}
	handed := false
	for _, m := range got {
		handed = handed || m.ID == id
	}
	st := getStatus(t, ta, id)
	if !handed && st.Sinks["q"].Status == "delivered" {
		t.Fatalf("queue q never handed %s out (its backlog was given up), yet status %+v", id, st)
	}
}

// A message sink a delivered ahead of its cursor (another topic held the
// cursor below it) before a was removed still reads delivered for a once a
// is added again: its delivered-ahead log outlives the removal, and what
// it names is delivered even below the new cursor's born.
func TestDeliveredAheadThenReaddedNotDropped(t *testing.T) {
	mixed := funcSink{write: func(ctx context.Context, msgs []sink.Message) error {
		if msgs[0].Topic == "stuck" {
			return errTransient
		}
		return nil
	}}
	ok := funcSink{write: func(ctx context.Context, msgs []sink.Message) error { return nil }}
	dir := t.TempDir()
	ta := startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "a", Sink: mixed}, {Name: "b", Sink: ok}}})
	pushKey(t, ta.url, "stuck", "", `"s"`)
	id := pushKey(t, ta.url, "fine", "", `"f"`)
	waitFor(t, "a delivered ahead", func() bool { return getStatus(t, ta, id).Sinks["a"].Status == "delivered" })
	if ta.a.fwds[0].cursor.Acked() != 0 {
		t.Fatalf("a's cursor moved: %d", ta.a.fwds[0].cursor.Acked())
	}
	ta.stop(t)

	ta = startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "b", Sink: ok}}, OrphanCursors: "remove"})
	ta.stop(t)

	ta = startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "a", Sink: mixed}, {Name: "b", Sink: ok}}})
	if st := getStatus(t, ta, id); st.Sinks["a"].Status == "dropped" {
		t.Fatalf("%s was delivered to a (ahead of its cursor) before a was removed; after a was added again: %+v", id, st)
	}
}

// A callback report still owed for a message older
// than a re-added sink (the receiver was down meanwhile) is final and says
// what GET /v1/messages says: a dropped, b delivered.
func TestCallbackOfGivenUpBacklogAfterReadd(t *testing.T) {
	stuck := funcSink{write: func(ctx context.Context, msgs []sink.Message) error { return errTransient }}
	ok := funcSink{write: func(ctx context.Context, msgs []sink.Message) error { return nil }}
	cbs := newCBServer(t)
	cbs.mu.Lock()
	cbs.fail = 1 << 30
	cbs.mu.Unlock()
	dir := t.TempDir()
	o := func(sinks ...SinkSpec) Options {
		return Options{Sinks: sinks, CallbackBackoff: 5 * time.Millisecond, CallbackAttempts: 1000}
	}
	ta := startAgent(t, dir, o(SinkSpec{Name: "a", Sink: stuck}, SinkSpec{Name: "b", Sink: ok}))
	id := do(t, "POST", ta.url+"/v1/topics/t", "", []byte(`"m"`), map[string]string{"Sluice-Callback": cbs.srv.URL + "/cb"}).ids[0]
	waitFor(t, "b delivered", func() bool { return getStatus(t, ta, id).Sinks["b"].Status == "delivered" })
	ta.stop(t)

	oo := o(SinkSpec{Name: "b", Sink: ok})
	oo.OrphanCursors = "remove"
	ta = startAgent(t, dir, oo)
	time.Sleep(300 * time.Millisecond)
	ta.stop(t)

	cbs.mu.Lock()
	cbs.fail = 0
	cbs.mu.Unlock()
	ta = startAgent(t, dir, o(SinkSpec{Name: "a", Sink: stuck}, SinkSpec{Name: "b", Sink: ok}))
	waitFor(t, "the report", func() bool { return cbs.reported(id) })
	rep := cbs.byID()[id]
	st := getStatus(t, ta, id)
	if rep.Status != st.Status || rep.Status != "dropped" || rep.Sinks["a"].Status != "dropped" || rep.Sinks["b"].Status != "delivered" {
		t.Fatalf("report %+v, status %+v", rep, st)
	}
}

// A sink added to a deployment with a backlog (born
// > 0) and never removed: records it was pushed after it existed read
// delivered also once they are gone from the spool (truncated); records
// from before it do not list it.
func TestSinkAddedLaterGoneRecords(t *testing.T) {
	ok := funcSink{write: func(ctx context.Context, msgs []sink.Message) error { return nil }}
	so := spool.Options{MaxBytes: 1 << 20, SegmentBytes: 4 << 10, TruncateSegments: 1, CursorSyncInterval: 10 * time.Millisecond}
	dir := t.TempDir()
	big := `"` + strings.Repeat("x", 400) + `"`
	ta := startAgentSpool(t, dir, Options{Sinks: []SinkSpec{{Name: "b", Sink: ok}}}, so)
	old := pushKey(t, ta.url, "t", "", big)
	for range 20 {
		pushKey(t, ta.url, "t", "", big)
	}
	ta.stop(t)
	ta = startAgentSpool(t, dir, Options{Sinks: []SinkSpec{{Name: "a", Sink: ok}, {Name: "b", Sink: ok}}}, so)
	born := ta.a.fwds[0].cursor.Born()
	if born < 21 {
		t.Fatalf("a born %d", born)
	}
	nw := pushKey(t, ta.url, "t", "", big)
	waitFor(t, "the new push gone from the spool", func() bool {
		pushKey(t, ta.url, "t", "", big)
		_, err := ta.a.sp.Get(born + 1)
		return err != nil
	})
	if st := getStatus(t, ta, nw); st.Status != "delivered" || st.Sinks["a"].Status != "delivered" || st.Sinks["b"].Status != "delivered" {
		t.Fatalf("gone push %s after a existed: %+v", nw, st)
	}
	if st := getStatus(t, ta, old); st.Status != "delivered" || len(st.Sinks) != 1 || st.Sinks["b"].Status != "delivered" {
		t.Fatalf("gone push %s from before a existed: %+v", old, st)
	}
}

// An Idempotency-Key repeat of a push older than a
// re-added sink, with Sluice-Ack: delivered, answers at once with the
// final outcome (dropped for the re-added sink), not pending after the
// whole timeout.
func TestIdempotentRepeatAfterReaddAnswersFinal(t *testing.T) {
	stuck := funcSink{write: func(ctx context.Context, msgs []sink.Message) error { return errTransient }}
	ok := funcSink{write: func(ctx context.Context, msgs []sink.Message) error { return nil }}
	dir := t.TempDir()
	key := map[string]string{"Idempotency-Key": "k1", "Sluice-Ack": "delivered", "Sluice-Timeout": "0.1"}
	ta := startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "a", Sink: stuck}, {Name: "b", Sink: ok}}})
	id := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("x"), key).ids[0] // a is stuck: answers pending
	waitFor(t, "b delivered", func() bool { return getStatus(t, ta, id).Sinks["b"].Status == "delivered" })
	ta.stop(t)
	ta = startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "b", Sink: ok}}, OrphanCursors: "remove"})
	ta.stop(t)
	ta = startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "a", Sink: stuck}, {Name: "b", Sink: ok}}})
	start := time.Now()
	r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("x"), map[string]string{"Idempotency-Key": "k1", "Sluice-Ack": "delivered", "Sluice-Timeout": "3s"})
	if len(r.ids) != 1 || r.ids[0] != id || r.ackStat != "dropped" || time.Since(start) > 2*time.Second {
		t.Fatalf("repeat: %d %+v ack %q after %v", r.status, r.ids, r.ackStat, time.Since(start))
	}
}
