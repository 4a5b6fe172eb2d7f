package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// The queue's delivered-after-drop log is closed with the forwarders'
// status logs (closeStatusLogs) on every way out of New and Run
// (statuslog_leak_regress_test.go), and at shutdown before the spool's
// lock is released. Found by review.

// New fails after queue q opened its delivered-after-drop log (a later
// queue has a bad glob). The failed New must not leave q's retry timer
// running, to write into a spool directory the caller has closed and
// unlocked.
func TestFailedNewClosesTheQueueAfterDropLog(t *testing.T) {
	dir := t.TempDir()
	sp, dl, blocker := brokenLogDir(t, dir, AfterDropFilePrefix+"q")
	o := withQueues(t, dir, Options{Spool: sp, DeadLetter: dl, Logger: quiet(), Listen: "127.0.0.1:0", AdminListen: "-"},
		QueueSpec{Name: "q"}, QueueSpec{Name: "r", Topics: []string{"["}})
	if _, err := New(o); err == nil {
		t.Fatal("New accepted the glob [")
	}
	for _, qs := range o.Queues {
		qs.Log.Close()
	}
	sp.Close()
	dl.Close()
	if err := os.RemoveAll(blocker); err != nil { // the disk "has room" again
		t.Fatal(err)
	}
	path := filepath.Join(dir, "spool", AfterDropFilePrefix+"q")
	time.Sleep(seqLogRetry + seqLogRetry/2)
	if _, err := os.Stat(path); err == nil {
		t.Fatalf("%s was written %v after New failed and the spool was closed: the failed New left the queue's retry timer running", filepath.Base(path), seqLogRetry)
	}
}

// The same through Run: a Run that fails before serving closes the
// queue's delivered-after-drop log, as it closes the forwarders' logs.
func TestFailedRunClosesTheQueueAfterDropLog(t *testing.T) {
	dir := t.TempDir()
	sp, dl, blocker := brokenLogDir(t, dir, AfterDropFilePrefix+"q")
	defer os.RemoveAll(blocker)
	o := withQueues(t, dir, Options{Spool: sp, DeadLetter: dl, Logger: quiet(), Listen: "256.0.0.1:1", AdminListen: "-"}, QueueSpec{Name: "q"})
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); err == nil {
		t.Fatal("Run listened on 256.0.0.1")
	}
	q := a.queues[0]
	q.mu.Lock()
	closed, timer := q.afterDropLog.closed, q.afterDropLog.timer
	q.mu.Unlock()
	// Leave nothing running behind the test.
	a.closeStatusLogs()
	q.qlog.close()
	sp.Close()
	dl.Close()
	if !closed || timer != nil {
		t.Fatalf("after a failed Run the queue's delivered-after-drop log is closed=%v, its retry timer armed=%v", closed, timer != nil)
	}
}

// At shutdown Run closes the status logs "while the spool directory is
// still locked", the queue's delivered-after-drop log included (before,
// it was closed after a.sp.Close() released the lock). A log whose last
// write failed is rewritten once more by close: into a directory another
// agent may own by then. Here
// "another agent" takes the spool's lock the moment it is free and
// writes its own delivered-after-drop.q (what its openSeqLog does); the
// stopping agent must not overwrite it.
func TestQueueAfterDropLogIsClosedBeforeTheSpoolUnlocks(t *testing.T) {
	dir := t.TempDir()
	sp, dl, blocker := brokenLogDir(t, dir, AfterDropFilePrefix+"q")
	ta := startAgent(t, dir, withQueues(t, dir, Options{Spool: sp, DeadLetter: dl}, QueueSpec{Name: "q"}))
	q := ta.a.queues[0]
	rewrites := func() int { q.mu.Lock(); defer q.mu.Unlock(); return q.afterDropLog.rewrites }
	// Right after a failed retry the timer waits a second: the stop below
	// comes well before the next one.
	n := rewrites()
	waitFor(t, "a failed retry of the rewrite", func() bool { return rewrites() > n })
	if err := os.RemoveAll(blocker); err != nil { // the disk "has room" again
		t.Fatal(err)
	}
	path := filepath.Join(sp.Dir(), AfterDropFilePrefix+"q")
	const theirs = "7 1\n"
	took := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(filepath.Join(sp.Dir(), "LOCK"), os.O_RDWR, 0)
		if err != nil {
			took <- err
			return
		}
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil { // blocks until the agent lets go
			took <- err
			return
		}
		took <- os.WriteFile(path, []byte(theirs), 0o600)
	}()
	time.Sleep(20 * time.Millisecond) // the goroutine waits on the lock
	ta.stop(t)
	if err := <-took; err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != theirs {
		t.Fatalf("%s holds %q after the stopped agent released the spool's lock and the next owner wrote %q: the queue's log was written after the unlock",
			filepath.Base(path), b, theirs)
	}
}

// The delivered-after-drop set keeps "the last 65,536 such messages per
// queue" (README): messages a consumer acknowledged although drop_oldest
// had skipped the queue's cursor past them. advance notes only slots the
// queue resolved itself (qslot.resolved); before, it noted every slot the
// cursor was dropped past, the records of other topics the queue passed
// over included, and on a spool shared with a busy sink those pushed the
// one acknowledged message out of the set: its record read dropped.
//
// Layout: A (the queue's topic) is leased; 69,632 small records of
// another topic follow, under the queue's 8 MiB cap, and the queue reads
// past them; then 12 MB of large ones push the backlog over the cap, and
// the trim skips the cursor past A and every small record.
func TestQueueAfterDropSetKeepsAckedMessagesNotOtherTopics(t *testing.T) {
	dir := t.TempDir()
	mem := &memSink{}
	ta := startAgent(t, dir, withQueues(t, dir,
		Options{Sinks: []SinkSpec{{Name: "s", Topics: []string{"o"}, Sink: mem.sink()}}},
		QueueSpec{Name: "q", Topics: []string{"t"}, MaxBacklogBytes: 8 << 20, BacklogPolicy: "drop_oldest", Visibility: time.Hour}))
	q := ta.a.queues[0]
	a := pushKey(t, ta.url, "t", "", `"A"`)
	waitFor(t, "A read", func() bool { r, _ := q.counts(); return r == 1 })
	var m []pulled
	waitFor(t, "A pulled", func() bool { m = qcall(t, ta.url, "q", "pull", `{"max":1}`).Messages; return len(m) == 1 })
	push := func(line []byte, n, per int) {
		for sent := 0; sent < n; {
			k := min(per, n-sent)
			if r := do(t, "POST", ta.url+"/v1/topics/o", "application/x-ndjson", bytes.Repeat(line, k), nil); r.status != 202 {
				t.Fatalf("push: %d %s", r.status, r.code)
			}
			sent += k
		}
	}
	const others = afterDropMax + 4096
	push([]byte("x\n"), others, 8192)
	last := mustSeq(t, a) + others
	waitFor(t, "the queue reads past the other topic's records", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return len(q.slots) > 0 && q.slots[len(q.slots)-1].seq >= last
	})
	if q.cursor.DroppedTotal() != 0 {
		t.Fatalf("setup: %d dropped before the large records", q.cursor.DroppedTotal())
	}
	push(append(bytes.Repeat([]byte("y"), 1_000_000), '\n'), 12, 6)
	waitFor(t, "drop_oldest skips the queue's cursor past the small records", func() bool { return q.cursor.Dropped(last) })
	if r := qcall(t, ta.url, "q", "ack", map[string]any{"receipts": []string{m[0].Receipt}}); r.Acked != 1 {
		t.Fatalf("ack A: %+v", r)
	}
	if st := getStatus(t, ta, a); st.Sinks["q"].Status != "delivered" {
		q.mu.Lock()
		n := len(q.afterDrop.m)
		q.mu.Unlock()
		t.Fatalf("A, handed out and acknowledged (the only message of the queue a drop skipped), reads %q: the after-drop set holds %d entries, of other topics' records",
			st.Sinks["q"].Status, n)
	}
}
