package agent

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/walcut"
	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/spool"
)

// A queue's backlog cap with drop_oldest moves the queue's spool cursor
// past messages the queue has already read into memory; those stay
// available (README: "Messages already read stay available"). A
// Sluice-Callback report of such a message must still wait until the queue
// resolves it (README: "sent once a consumer acknowledged the message, or
// it was dead-lettered or dropped"), and must not say "pending": the
// queue's resolvedThrough stays below the oldest message it holds.
func TestQueueDropOldestDoesNotReportAMessageStillQueued(t *testing.T) {
	cbs := newCBServer(t)
	dir := t.TempDir()
	opts := withQueues(t, dir, Options{CallbackBackoff: 5 * time.Millisecond},
		QueueSpec{Name: "q", Topics: []string{"t"}, MaxBacklogBytes: 4096, BacklogPolicy: "drop_oldest"})
	ta := startAgent(t, dir, opts)
	hdr := map[string]string{"Sluice-Callback": cbs.srv.URL + "/cb"}
	first := do(t, "POST", ta.url+"/v1/topics/t", "", []byte(`"first"`), hdr).ids[0]
	// Let the queue read it into memory (a pull with no visibility left
	// would lease it; look at the request record instead).
	time.Sleep(300 * time.Millisecond)
	// Over the cap: the next maintenance round (every second) trims the
	// queue's cursor past the first message.
	big := []byte(`"` + strings.Repeat("x", 1500) + `"`)
	for range 6 {
		do(t, "POST", ta.url+"/v1/topics/t", "", big, nil)
	}
	time.Sleep(2500 * time.Millisecond)
	// The first message is still handed out: it was not dropped.
	var got []pulled
	waitFor(t, "the first message pulled", func() bool {
		got = append(got, qcall(t, ta.url, "q", "pull", `{"max":10}`).Messages...)
		for _, m := range got {
			if m.ID == first {
				return true
			}
		}
		return false
	})
	time.Sleep(500 * time.Millisecond) // the dispatcher runs every 250 ms at least
	if r, sent := cbs.byID()[first]; sent {
		t.Fatalf("report of %s sent while the queue still holds it (leased now, never acknowledged): status %q, sinks %+v", first, r.Status, r.Sinks)
	}
}

// cutSpoolTail keeps the first keep records of the spool's WAL under dir
// (one segment): what a machine crash leaves of a spool whose tail was not
// synced yet (SPOOL_SYNC=interval or never).
func cutSpoolTail(t *testing.T, dir string, keep int) {
	t.Helper()
	walcut.KeepFirst(t, filepath.Join(dir, "spool", "wal", "00000000000000000001"), keep)
}

// The queue's "through" position (checkpointed in its log) is compared with
// its epoch where the queue hands messages out (qpos.covers: "a sequence
// reused after a machine crash cut the spool's tail comes with a later
// epoch than p's, so it is not covered"), and so is it where a message's
// status is decided (seqState) and where a callback report waits
// (resolvedAhead). After a machine crash cut the spool's unsynced tail
// (SPOOL_SYNC=interval) while the queue log's checkpoint survived, a new
// message that reuses a sequence at or below through, and that the queue
// has not read yet, must not read "delivered" (Sluice-Ack: delivered, the
// callback report) before a consumer had it.
func TestQueueThroughComparesTheEpoch(t *testing.T) {
	dir := t.TempDir()
	so := spool.Options{MaxBytes: 256 << 20, CursorSyncInterval: time.Hour}
	ta := startAgentSpool(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q"}), so)
	pushPullAck(t, ta, 100, func(i int) string { return fmt.Sprintf(`{"n":%d}`, i) })
	checkpointThrough(t, ta, 100)
	img := crashImage(t, dir)
	ta.stop(t)
	cutSpoolTail(t, img, 5) // the machine crash: records 6..100 were not synced yet

	cbs := newCBServer(t)
	ta = startAgentSpool(t, img, withQueues(t, img, Options{CallbackBackoff: 5 * time.Millisecond}, QueueSpec{Name: "q"}), so)
	// Fill the queue's read-ahead (32 MiB) so that it stops reading the
	// spool for a while, as it does under a deep backlog.
	big := bytes.Repeat([]byte("x"), 1000000)
	for range 36 {
		do(t, "POST", ta.url+"/v1/topics/t", "", big, nil)
	}
	r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte(`"new"`), map[string]string{
		"Sluice-Ack": "delivered", "Sluice-Timeout": "1s", "Sluice-Callback": cbs.srv.URL + "/cb"})
	id := r.ids[0]
	time.Sleep(time.Second)
	if rep, sent := cbs.byID()[id]; sent {
		t.Errorf("callback report of %s (never handed out) sent: status %q sinks %+v", id, rep.Status, rep.Sinks)
	}
	if r.ackStat != "pending" {
		t.Fatalf("push of %s (epoch %d, never handed out) with Sluice-Ack: delivered answered %q, want pending", id, ta.a.sp.Epoch(), r.ackStat)
	}
}

// The other half of the drop_oldest trim: the message the trim skipped
// stays in the queue's memory and is handed out; a consumer acknowledges
// it; its request record then says "delivered" (README: delivered for an
// acknowledged message, dropped only for messages the policy evicted),
// though the cursor's drop ranges hold it; and still does after a
// restart (the queue's delivered-after-drop log: before, it was in memory
// only, the queue log's ack record is below the cursor and let go at
// open, and the record read dropped; found by review).
func TestQueueDropOldestAckedReadsDelivered(t *testing.T) {
	dir := t.TempDir()
	opts := func() Options {
		return withQueues(t, dir, Options{},
			QueueSpec{Name: "q", Topics: []string{"t"}, MaxBacklogBytes: 4096, BacklogPolicy: "drop_oldest"})
	}
	ta := startAgent(t, dir, opts())
	first := pushKey(t, ta.url, "t", "", `"first"`)
	time.Sleep(300 * time.Millisecond) // the queue reads it into memory
	big := `"` + strings.Repeat("x", 1500) + `"`
	for range 6 {
		pushKey(t, ta.url, "t", "", big)
	}
	q := ta.a.queues[0]
	waitFor(t, "the trim past the first message", func() bool { return q.cursor.DroppedTotal() > 0 })
	var m *pulled
	waitFor(t, "the first message pulled", func() bool {
		for _, x := range qcall(t, ta.url, "q", "pull", `{"max":10}`).Messages {
			if x.ID == first {
				m = &x
			}
		}
		return m != nil
	})
	if r := qcall(t, ta.url, "q", "ack", map[string]any{"receipts": []string{m.Receipt}}); r.status != 200 || r.Acked != 1 {
		t.Fatalf("ack: %+v", r)
	}
	if st := getStatus(t, ta, first); st.Status != "delivered" {
		t.Fatalf("status of %s, handed out and acknowledged: %q (sinks %+v), want delivered", first, st.Status, st.Sinks)
	}
	ta.stop(t)
	ta = startAgent(t, dir, opts())
	if st := getStatus(t, ta, first); st.Status != "delivered" {
		t.Fatalf("after a restart, status of %s, handed out and acknowledged: %q (sinks %+v), want delivered", first, st.Status, st.Sinks)
	}
}

// A report is final (Report.Status: "delivered, failed or dropped"). When
// the callback receiver was down and a queue message's dead letter is
// replayed into the queue before an attempt got through, the report waits
// for the replayed message's outcome: none is sent while it is pending,
// and the one sent after the ack says delivered.
func TestQueueReportAfterReplayWaitsForTheOutcome(t *testing.T) {
	cbs := newCBServer(t)
	cbs.mu.Lock()
	cbs.fail = 1 << 30 // the receiver is down
	cbs.mu.Unlock()
	dir := t.TempDir()
	ta := startAgent(t, dir, withQueues(t, dir, Options{CallbackBackoff: 5 * time.Millisecond},
		QueueSpec{Name: "q", Topics: []string{"t"}, MaxAttempts: 1, Visibility: time.Second}))
	id := do(t, "POST", ta.url+"/v1/topics/t", "", []byte(`"m"`), map[string]string{"Sluice-Callback": cbs.srv.URL + "/cb"}).ids[0]
	waitFor(t, "the message pulled", func() bool { return len(qcall(t, ta.url, "q", "pull", `{}`).Messages) == 1 })
	waitFor(t, "dead-lettered (max_attempts)", func() bool { return getStatus(t, ta, id).Status == "failed" })
	if r := do(t, "POST", ta.url+"/v1/control/deadletters/replay", "", nil, ta.ctl()); r.status != 200 {
		t.Fatalf("replay: %+v", r)
	}
	waitFor(t, "the replayed message in the queue", func() bool { return getStatus(t, ta, id).Status == "pending" })
	cbs.mu.Lock()
	cbs.fail = 0 // the receiver is back
	cbs.mu.Unlock()
	time.Sleep(1500 * time.Millisecond) // past the report's first deferral (not a timing claim)
	if r, ok := cbs.byID()[id]; ok {
		t.Fatalf("report of %s sent while the replayed message waits in the queue: %+v", id, r)
	}
	var got []pulled
	waitFor(t, "the replayed message pulled", func() bool {
		got = qcall(t, ta.url, "q", "pull", `{}`).Messages
		return len(got) == 1
	})
	if r := qcall(t, ta.url, "q", "ack", map[string]any{"receipts": receipts(got)}); r.status != 200 || r.Acked != 1 {
		t.Fatalf("ack: %+v", r)
	}
	waitFor(t, "the report", func() bool { _, ok := cbs.byID()[id]; return ok })
	if r := cbs.byID()[id]; r.Status != "delivered" {
		t.Fatalf("report of %s: status %q (sinks %+v), want delivered", id, r.Status, r.Sinks)
	}
}

// The dispatcher remembers which targets passed a report in a 64-bit mask
// (waitMask, "if i < 64"); a target at index 64 or above has no bit, so
// only its cursor passes a report (not takeAhead). Queues come after the
// forwarders in d.targets, so with 64 sinks a queue is such a target: a
// message it acknowledged ahead of an earlier one must be passed once, and
// its report wait for the other target (a sink that never delivered it).
func TestQueueReportPassedOnceBeyond64Targets(t *testing.T) {
	cbs := newCBServer(t)
	dir := t.TempDir()
	down := &memSink{}
	down.setFail(func([]sink.Message) error { return errors.New("upstream down") })
	sinks := []SinkSpec{{Name: "down", Sink: down.sink(), Topics: []string{"t"}}}
	for i := range 63 {
		m := &memSink{}
		sinks = append(sinks, SinkSpec{Name: fmt.Sprintf("idle%02d", i), Sink: m.sink(), Topics: []string{"nothing"}})
	}
	ta := startAgent(t, dir, withQueues(t, dir, Options{CallbackBackoff: 5 * time.Millisecond, Sinks: sinks},
		QueueSpec{Name: "q", Topics: []string{"t"}}))
	first := pushKey(t, ta.url, "t", "", `"first"`)
	x := do(t, "POST", ta.url+"/v1/topics/t", "", []byte(`"x"`), map[string]string{"Sluice-Callback": cbs.srv.URL + "/cb"}).ids[0]
	var got []pulled
	waitFor(t, "both messages pulled", func() bool {
		got = append(got, qcall(t, ta.url, "q", "pull", `{"max":10}`).Messages...)
		return len(got) == 2
	})
	byID := map[string]pulled{}
	for _, m := range got {
		byID[m.ID] = m
	}
	qcall(t, ta.url, "q", "ack", map[string]any{"receipts": []string{byID[x].Receipt}}) // ahead of first
	time.Sleep(500 * time.Millisecond)
	qcall(t, ta.url, "q", "ack", map[string]any{"receipts": []string{byID[first].Receipt}}) // the cursor moves past x
	time.Sleep(time.Second)
	if r, sent := cbs.byID()[x]; sent {
		t.Fatalf("report of %s sent while sink down never delivered it: status %q, down %+v, q %+v", x, r.Status, r.Sinks["down"], r.Sinks["q"])
	}
}

// The spool-wide cap with drop_oldest (SPOOL_FULL_POLICY) skips the queue's
// cursor the same way: the queue keeps handing out the message it had read,
// and its report waits for the queue.
func TestQueueSpoolDropOldestDoesNotReportAMessageStillQueued(t *testing.T) {
	cbs := newCBServer(t)
	dir := t.TempDir()
	so := spool.Options{MaxBytes: 64 << 10, SegmentBytes: 16 << 10, FullPolicy: spool.DropOldest}
	ta := startAgentSpool(t, dir, withQueues(t, dir, Options{CallbackBackoff: 5 * time.Millisecond}, QueueSpec{Name: "q", Topics: []string{"t"}}), so)
	first := do(t, "POST", ta.url+"/v1/topics/t", "", []byte(`"first"`), map[string]string{"Sluice-Callback": cbs.srv.URL + "/cb"}).ids[0]
	time.Sleep(300 * time.Millisecond) // the queue reads it into memory
	big := `"` + strings.Repeat("x", 4000) + `"`
	for range 40 {
		pushKey(t, ta.url, "t", "", big)
	}
	q := ta.a.queues[0]
	waitFor(t, "the cap's drop past the first message", func() bool { return q.cursor.DroppedTotal() > 0 })
	var m *pulled
	waitFor(t, "the first message pulled", func() bool {
		for _, x := range qcall(t, ta.url, "q", "pull", `{"max":100}`).Messages {
			if x.ID == first {
				m = &x
			}
		}
		return m != nil
	})
	time.Sleep(500 * time.Millisecond)
	if r, sent := cbs.byID()[first]; sent {
		t.Fatalf("report of %s sent while the queue still holds it (handed out as attempt %d, never acknowledged): status %q, sinks %+v", first, m.Attempt, r.Status, r.Sinks)
	}
}
