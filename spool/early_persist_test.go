package spool

import (
	"context"
	"testing"
	"time"
)

// After the early persist at Open, Persisted, in-place persists and a
// crash after each keep the cursor's position (a review's test; it held).
func TestEarlyPersistAtOpenThenInPlaceKeepsTheCursor(t *testing.T) {
	dir := t.TempDir()
	s, c := droppedThenCut(t, dir, Options{CursorSyncInterval: time.Hour, SegmentBytes: 4096, TruncateSegments: 1})
	for _, ci := range s.Cursors() {
		if ci.Persisted != 7 {
			t.Fatalf("persisted %d after the early persist", ci.Persisted)
		}
	}
	appendN(t, s, 100, 3)
	for want := uint64(8); want <= 10; want++ {
		recs, err := c.Read(context.Background(), 1, 1<<20)
		if err != nil || len(recs) != 1 {
			t.Fatalf("read %v %v", recs, err)
		}
		if err := c.Ack(recs[0].Seq()); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		crashed := t.TempDir()
		copyDir(t, dir, crashed)
		s2 := openT(t, crashed, Options{})
		c2, err := s2.Cursor("c", CursorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if c2.Acked() != want || c2.Dropped(want) {
			t.Fatalf("after crash: acked %d (want %d), dropped %t", c2.Acked(), want, c2.Dropped(want))
		}
		s2.Close()
	}
}
