package spool

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/nofds"
	"github.com/sluiceio/sluice/internal/syncbuf"
)

// A front truncation that fails part way, or whose directory fsync fails,
// leaves segs in line with the files; readers meanwhile take no removed file
// for damage. Found by review, with the first and the last of these tests.

// TestDirSyncFailingAfterTruncationNotesNothingLost plays committer.truncate
// step by step when tidwall's TruncateFront succeeded (the passed segments'
// files removed, the last one rewritten under a new name) and the directory
// fsync after it fails (EIO, or EMFILE opening the directory): segs follows
// the files before the fsync, so that readers do not take the files an
// ordinary truncation removed for damage. truncate called c.fail without
// updating segs: a cursor created at the oldest record (the idempotency
// copier, a queue log reader) and a ReadFrom then counted corruptions and
// noted lost records every cursor had acknowledged, which read unknown.
func TestDirSyncFailingAfterTruncationNotesNothingLost(t *testing.T) {
	s, a, ids := readBacklog(t, t.TempDir(), Options{SegmentBytes: 4096, CursorSyncInterval: time.Hour, TruncateSegments: noTruncation}, 40)
	if err := a.Ack(ids[len(ids)-1].Seq); err != nil {
		t.Fatal(err)
	}
	if err := s.persistCursors([]*Cursor{a}); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	if len(s.segs) < 4 {
		s.mu.Unlock()
		t.Fatalf("want at least 4 segments, have %d", len(s.segs))
	}
	upTo := s.segs[1].last // what scheduleTruncate asks for with two segments passed
	s.mu.Unlock()

	// committer.truncate, with syncDir failing after TruncateFront.
	c := &committer{s: s}
	s.mu.Lock()
	s.truncGen++
	first := s.segs[0].path
	s.mu.Unlock()
	if err := s.wl.TruncateFront(upTo); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Fatalf("setup: front segment file still there (%v)", err)
	}
	s.mu.Lock()
	s.frontTruncatedLocked(upTo)
	s.truncGen++
	s.mu.Unlock()
	c.fail(fmt.Errorf("sync dir: %w", syscall.EIO))

	// A cursor from the oldest record, as the agent creates at start.
	b, err := s.Cursor("b", CursorOptions{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	for b.Acked() < s.LastSeq() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		recs, err := b.Read(ctx, 100, 1<<20)
		cancel()
		if err != nil {
			break
		}
		if err := b.Ack(recs[len(recs)-1].ID.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ReadFrom(ids[0].Seq, 10, 1<<20); err != nil {
		t.Logf("ReadFrom: %v", err)
	}
	st := s.Stats()
	lost := 0
	for _, id := range ids {
		if s.Lost(id) {
			lost++
		}
	}
	if st.Corruptions > 0 || lost > 0 {
		t.Fatalf("after an ordinary truncation whose directory fsync failed, readers counted %d corruptions and noted %d records lost, all acknowledged by cursor a and none damaged (the truncation removed their files; s.segs still listed them with truncGen even)",
			st.Corruptions, lost)
	}
}

// TestTruncationFailingWithoutDescriptorsNotesNothingLost: a front
// truncation that fails for want of file descriptors (its START file cannot
// be created) counts as running until the WAL is opened again, readers
// meanwhile note nothing lost, and once descriptors are free the spool
// appends, reads every record and truncates again.
func TestTruncationFailingWithoutDescriptorsNotesNothingLost(t *testing.T) {
	s, a, ids := readBacklog(t, t.TempDir(), Options{SegmentBytes: 4096, CursorSyncInterval: time.Hour, TruncateSegments: 1}, 40)
	val := strings.Repeat("v", 500)
	readAck := func(c *Cursor, n int) {
		t.Helper()
		recs := readAll(t, c, n)
		if err := c.Ack(recs[len(recs)-1].ID.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Ack(ids[0].Seq); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil { // a's position file, kept open
		t.Fatal(err)
	}
	if err := a.Ack(ids[len(ids)-1].Seq); err != nil {
		t.Fatal(err)
	}
	restore := nofds.Starve(t)
	err := s.Flush() // persists a in place, asks for the truncation
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		failed := s.diskErr != nil
		s.mu.Unlock()
		if failed || time.Now().After(deadline) {
			break
		}
	}
	restore()
	if err != nil {
		t.Fatalf("flush: %v", err)
	}
	if s.Stats().WriteErrors == 0 {
		t.Fatal("setup: the truncation did not fail")
	}
	// Appends fail until the WAL is opened again (tried every 500 ms).
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		id, err := s.Append(context.Background(), []byte(val))
		if err == nil {
			ids = append(ids, id)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("append once descriptors are free: %v", err)
		}
	}
	b, err := s.Cursor("b", CursorOptions{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	for b.Acked() < s.LastSeq() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		recs, err := b.Read(ctx, 1000, 1<<20)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Ack(recs[len(recs)-1].ID.Seq); err != nil {
			t.Fatal(err)
		}
	}
	lost := 0
	for _, id := range ids {
		if s.Lost(id) {
			lost++
		}
	}
	if st := s.Stats(); st.Corruptions > 0 || lost > 0 {
		t.Fatalf("after a truncation that failed without descriptors: %d corruptions, %d records noted lost", st.Corruptions, lost)
	}
	readAck(a, 1)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return s.Stats().Truncations > 0 }) // a truncation once descriptors are free
}

// TestReadFromDuringTruncationSkipsTruncatedRecords: ReadFrom's contract is
// that records truncated meanwhile are skipped. A ReadFrom from a record in
// the middle of the oldest segment, while a front truncation has removed
// that segment's file and segs does not say so yet (truncGen odd), waits for
// the truncation and reads on from the new front; it returned the
// os.ErrNotExist posOf met (a forwarder's reload of an evicted item failed
// with it).
func TestReadFromDuringTruncationSkipsTruncatedRecords(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentBytes: 4096, TruncateSegments: noTruncation})
	val := strings.Repeat("v", 500)
	for range 30 {
		if _, err := s.Append(context.Background(), []byte(val)); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	seg0 := s.segs[0]
	s.truncGen++ // a truncation of the first segment begins
	s.mu.Unlock()
	if err := os.Remove(seg0.path); err != nil {
		t.Fatal(err)
	}
	type res struct {
		recs []Record
		err  error
	}
	done := make(chan res, 1)
	go func() {
		recs, err := s.ReadFrom(seg0.first+2, 1, 1<<20) // mid-segment
		done <- res{recs, err}
	}()
	time.Sleep(20 * time.Millisecond)
	s.mu.Lock() // the truncation ends: s.segs says so
	s.segs = append(s.segs[:0:0], s.segs[1:]...)
	s.truncGen++
	s.mu.Unlock()
	r := <-done
	if r.err != nil {
		t.Fatalf("ReadFrom(%d) during an ordinary front truncation of its segment returned %v; want the records from the new front (records truncated meanwhile are skipped)", seg0.first+2, r.err)
	}
	if len(r.recs) == 0 || r.recs[0].ID.Seq <= seg0.last {
		t.Fatalf("ReadFrom during a truncation returned %d records, want the new front's first", len(r.recs))
	}
	if st := s.Stats(); st.Corruptions > 0 {
		t.Fatalf("counted %d corruptions", st.Corruptions)
	}
}

// TestIdleSpoolRecoversFromATruncationThatFailedPartWay drives a real front
// truncation through the commit goroutine that fails part way: TruncateFront
// removes the passed segments' files, then cannot rename its START file
// (here: the final name is taken by a directory, standing in for a rename
// that fails with EIO), and the reopen that c.fail tries at once fails the
// same way. The obstacle then goes (the disk recovers) and no append arrives
// (an idle sidecar): the commit loop reopens the WAL by itself, which
// finishes the truncation, and readers go on from the new front; ReadFrom
// waits for a truncation a bounded time. Only appends reopened the WAL: the
// truncation counted as running for good and ReadFrom waited for ever.
// Found by review, with this test.
func TestIdleSpoolRecoversFromATruncationThatFailedPartWay(t *testing.T) {
	s, ids, upTo, heal := truncationFailingPartWay(t)
	heal()
	s.mu.Lock()
	tg := s.truncGen
	first := s.segs[0].path
	s.mu.Unlock()
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Fatalf("setup: the truncation did not remove the front segment (%v)", err)
	}
	t.Logf("truncGen %d after the failed truncation and reopen", tg)

	// No append: the commit loop reopens the WAL by itself.
	waitFor(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.truncGen%2 == 0
	})
	// A cursor created now from the oldest record (the idempotency copier,
	// a sink added) reads what is left, from the new front.
	b, err := s.Cursor("b", CursorOptions{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	recs, err := b.Read(ctx, 10, 1<<20)
	cancel()
	if err != nil || len(recs) == 0 || recs[0].ID.Seq != upTo {
		t.Fatalf("cursor from the oldest after the truncation finished: %d records, %v; want them from %d", len(recs), err, upTo)
	}
	if recs, err := s.ReadFrom(ids[0].Seq, 10, 1<<20); err != nil || len(recs) == 0 || recs[0].ID.Seq != upTo {
		t.Fatalf("ReadFrom(%d) after the truncation finished: %d records, %v; want them from %d", ids[0].Seq, len(recs), err, upTo)
	}
	if st := s.Stats(); st.Corruptions > 0 || s.Lost(ids[0]) {
		t.Fatalf("%d corruptions, record 1 noted lost: an ordinary truncation taken for damage", st.Corruptions)
	}
}

// readBacklog opens a spool at dir with o and a cursor "a", appends n
// records of 500 bytes and has a read them all, acknowledging none: what a
// truncation test starts from once a acknowledges them.
func readBacklog(t *testing.T, dir string, o Options, n int) (*Spool, *Cursor, []ID) {
	t.Helper()
	s := openT(t, dir, o)
	a, err := s.Cursor("a", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	val := []byte(strings.Repeat("v", 500))
	var ids []ID
	for range n {
		id, err := s.Append(context.Background(), val)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	readAll(t, a, n)
	return s, a, ids
}

// truncationFailingPartWay has a real truncation fail part way: cursor a
// acknowledges a backlog, the truncation removes the segments' files, and
// the rename of its START file to segmentName(upTo) fails (a directory
// takes the name, standing in for a rename that fails with EIO), as does
// the reopen that c.fail tries at once. heal takes the obstacle away (the
// disk recovers); nothing is appended.
func truncationFailingPartWay(t *testing.T) (s *Spool, ids []ID, upTo uint64, heal func()) {
	t.Helper()
	var logs syncbuf.Buffer
	s, a, ids := readBacklog(t, t.TempDir(), Options{SegmentBytes: 4096, CursorSyncInterval: time.Hour, TruncateSegments: 1,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}, 40)
	s.mu.Lock()
	n := len(s.segs)
	upTo = s.segs[n-2].last // what scheduleTruncate asks for once a acked everything
	s.mu.Unlock()
	if n < 3 {
		t.Fatalf("setup: %d segments", n)
	}
	block := filepath.Join(s.walDir, segmentName(upTo))
	if err := os.MkdirAll(filepath.Join(block, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := a.Ack(ids[len(ids)-1].Seq); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "spool still failing") }) // c.fail's reopen failed
	return s, ids, upTo, func() {
		if err := os.RemoveAll(block); err != nil {
			t.Fatal(err)
		}
	}
}
