package spool

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// A listed segment whose file is gone for good (an operator's rm, a lost
// rewrite) is damage: reads skip it and note its records lost, and drops
// go past it. Three paths treated it as a passing error instead. Found by
// review, with these tests.

// removeFront removes the file of the spool's oldest segment.
func removeFront(t *testing.T, s *Spool) {
	t.Helper()
	s.mu.Lock()
	if len(s.segs) < 2 {
		s.mu.Unlock()
		t.Fatalf("want at least two segments, have %d", len(s.segs))
	}
	front := s.segs[0].path
	s.mu.Unlock()
	if err := os.Remove(front); err != nil {
		t.Fatal(err)
	}
}

// TestDropOldestWithASegmentFileGoneDropsPastIt: drop_oldest at the cap
// with the oldest segment's file gone drops past that segment and accepts
// the append; it refused every append over the cap for good (ErrFull)
// while a cursor sat in the segment, a dead sink's for instance, which is
// what drop_oldest is for.
func TestDropOldestWithASegmentFileGoneDropsPastIt(t *testing.T) {
	s, c, val := atTheCap(t, 20)
	removeFront(t, s)
	for range 5 {
		if _, err := s.Append(context.Background(), val); errors.Is(err, ErrFull) {
			t.Fatalf("drop_oldest with the oldest segment's file gone refused an append (%v); dropped %d, cursor acked %d, last %d",
				err, s.Stats().Dropped, c.Acked(), s.LastSeq())
		}
	}
}

// TestReadFromASegmentFileGoneSkipsIt: ReadFrom over a segment whose file
// is gone skips it, notes its records lost and returns what follows; it
// took the missing file for a truncation under way and started again, for
// ever, at full CPU (a spilled lane's catch-up calls it).
func TestReadFromASegmentFileGoneSkipsIt(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentBytes: 4096, TruncateSegments: noTruncation})
	big := strings.Repeat("x", 5000) // a segment each
	ids := appendAll(t, s, "one-"+big, "two-"+big, "three-"+big)
	removeFront(t, s)
	done := make(chan struct{})
	var recs []Record
	var err error
	go func() {
		defer close(done)
		recs, err = s.ReadFrom(ids[0].Seq, 10, 1<<20)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		s.closed.Store(true) // let the spinning goroutine out
		<-done
		s.closed.Store(false)
		t.Fatalf("ReadFrom(%d) with the front segment's file gone did not return (spinning)", ids[0].Seq)
	}
	if err != nil || len(recs) == 0 || recs[0].ID != ids[1] || !s.Lost(ids[0]) || s.Lost(ids[1]) {
		t.Fatalf("ReadFrom over a segment file gone: %d records (first %v) %v, lost(one) %v, lost(two) %v; want two on, one lost",
			len(recs), func() ID {
				if len(recs) > 0 {
					return recs[0].ID
				}
				return ID{}
			}(), err, s.Lost(ids[0]), s.Lost(ids[1]))
	}
}

// TestTrimBacklogPastASegmentFileGoneTrims: a cursor's own cap
// (TrimBacklog: a sink's or queue's backlog policy) whose drop point lies in
// a segment whose file is gone drops past that segment; it returned the
// error at every try and trimmed nothing, so the sink's backlog grew to the
// whole spool's cap.
func TestTrimBacklogPastASegmentFileGoneTrims(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentBytes: 4096, TruncateSegments: noTruncation})
	big := strings.Repeat("x", 5000) // a segment each
	appendAll(t, s, "one-"+big, "two-"+big, "three-"+big, "four-"+big)
	c, err := s.Cursor("a", CursorOptions{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	removeFront(t, s)
	before := c.BacklogBytes()
	limit := before - 100 // the drop point in the first segment
	if _, err := c.TrimBacklog(limit); err != nil {
		t.Fatalf("TrimBacklog(%d) with the oldest segment's file gone: %v", limit, err)
	}
	if b := c.BacklogBytes(); b > limit {
		t.Fatalf("TrimBacklog(%d) with the oldest segment's file gone left a backlog of %d bytes (was %d)", limit, b, before)
	}
}
