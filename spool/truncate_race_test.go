package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCursorFromOldestDuringTruncationNotesNothingLost: a cursor created at
// the oldest record (the agent's idempotency copier, callback store
// cursor, dead-letter and queue-log readers all are) while a front
// truncation scheduled before it existed is running reads a segment whose
// file the truncation has just removed, before s.segs says so. That is not
// damage: the reader reads on from the new front. It took the missing file
// for damage, counted a corruption and noted the records lost: records
// every other cursor had acknowledged (delivered) read unknown, and the
// rewritten segment's first record, still on disk, was skipped.
func TestCursorFromOldestDuringTruncationNotesNothingLost(t *testing.T) {
	for iter := range 40 { // it failed within two before the fix
		s, a, ids := readBacklog(t, t.TempDir(), Options{SegmentBytes: 4096, CursorSyncInterval: time.Hour, TruncateSegments: 1}, 60)
		if err := a.Ack(ids[len(ids)-1].Seq); err != nil {
			t.Fatal(err)
		}
		// What the flush loop does: persist "a", schedule the truncation.
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(iter%8) * 250 * time.Microsecond)
		b, err := s.Cursor("b", CursorOptions{FromOldest: true})
		if err != nil {
			t.Fatal(err)
		}
		for b.Acked() < s.LastSeq() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			recs, err := b.Read(ctx, 1, 1<<20)
			cancel()
			if err != nil {
				break
			}
			if err := b.Ack(recs[0].ID.Seq); err != nil {
				t.Fatal(err)
			}
		}
		st := s.Stats()
		if st.Corruptions > 0 || st.LostRecords > 0 {
			lost, onDisk := 0, 0
			for _, id := range ids {
				if s.Lost(id) {
					lost++
					if _, err := s.Get(id.Seq); err == nil {
						onDisk++
					}
				}
			}
			t.Fatalf("iteration %d: a cursor created while an ordinary truncation ran counted %d corruptions and noted %d records lost (%d of them still readable on disk), all acknowledged by cursor a and none damaged; truncations %d",
				iter, st.Corruptions, lost, onDisk, st.Truncations)
		}
		s.Close()
	}
}

// TestReaderThatMissedAFileDuringAnEndedTruncationNotesNothingLost
// plays by hand what tidwall's TruncateFront does when upTo is the first
// record of a segment (scheduleTruncate asks for that when the passed
// segment is empty, a quarantine emptied it): the segment's file is
// removed and its START copy renamed to the same name. A reader that opened
// the file in between gets os.ErrNotExist, and looks again after the
// truncation ended (the same path listed): a truncation began since it
// looked, so nothing is damaged. Deciding by whether one ran at the second
// look, it counted a corruption and noted records on disk lost.
func TestReaderThatMissedAFileDuringAnEndedTruncationNotesNothingLost(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentBytes: 4096, TruncateSegments: noTruncation})
	big := strings.Repeat("x", 5000) // a segment each
	ids := appendAll(t, s, "one-"+big, "two-"+big, "three-"+big)
	s.mu.Lock()
	p := s.segs[0].path
	s.mu.Unlock()
	const readers = 64
	for round := range 10 { // before the fix it failed within a few
		var cs []*Cursor
		for i := range readers {
			c, err := s.Cursor(fmt.Sprintf("r-%d-%d", round, i), CursorOptions{FromOldest: true})
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, c)
		}
		// The truncation starts and removes the file.
		s.mu.Lock()
		s.truncGen++ // begun
		if err := os.Rename(p, p+".START"); err != nil {
			s.mu.Unlock()
			t.Fatal(err)
		}
		s.mu.Unlock()
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				c.Read(ctx, 1, 1<<20)
			}()
		}
		time.Sleep(20 * time.Millisecond)
		// The START file takes the same name; the truncation ends.
		s.mu.Lock()
		if err := os.Rename(p+".START", p); err != nil {
			s.mu.Unlock()
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
		s.truncGen++ // ended
		s.mu.Unlock()
		wg.Wait()
		if st := s.Stats(); st.Corruptions > 0 || s.Lost(ids[0]) {
			t.Fatalf("round %d: readers that found the file gone while a truncation ran, and looked again after it ended, counted %d corruptions; lost(%d) %v though the record is on disk (Get: %v)",
				round, st.Corruptions, ids[0].Seq, s.Lost(ids[0]), func() error { _, err := s.Get(ids[0].Seq); return err }())
		}
		for _, c := range cs {
			c.Release()
		}
	}
}

// TestReadWaitingOnATruncationKeepsItsDeadline: a reader that finds its
// segment's file gone while a truncation runs waits for it, within its
// context: a truncation stalled on a disk (TruncateFront fsyncs) held such
// reads past their deadlines. Here the truncation is held by hand until the
// read returns.
func TestReadWaitingOnATruncationKeepsItsDeadline(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentBytes: 4096, TruncateSegments: noTruncation})
	big := strings.Repeat("x", 5000) // a segment each
	appendAll(t, s, "one-"+big, "two-"+big, "three-"+big)
	c, err := s.Cursor("a", CursorOptions{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	p := s.segs[0].path
	s.truncGen++ // a truncation under way, its fsync stalled
	s.mu.Unlock()
	if err := os.Rename(p, p+".gone"); err != nil {
		t.Fatal(err)
	}
	returned := make(chan struct{})
	var released atomic.Bool
	go func() {
		select {
		case <-returned:
		case <-time.After(time.Minute): // let a read that ignores its deadline out
		}
		s.mu.Lock()
		released.Store(true)
		os.Rename(p+".gone", p)
		s.truncGen++
		s.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = c.Read(ctx, 1, 1<<20)
	late := released.Load()
	close(returned)
	if late || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read with a 100 ms deadline while a truncation runs: %v, returned only once the truncation ended: %v", err, late)
	}
}
