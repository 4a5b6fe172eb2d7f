package spool

import (
	"context"
	"testing"
	"time"
)

// A cursor's memory of drops is bounded, but a dropped record never reads
// as acknowledged: past maxDroppedRanges separate drops the oldest are
// merged, with the records acknowledged between them, into a range whose
// records are DropForgotten (neither known dropped nor known
// acknowledged); the latest drops stay exact; also across a reopen.
// Before (found by review), the oldest range was let go, and its records
// read as acknowledged.
func TestOldDropsAreMergedNotForgotten(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	c, err := s.Cursor("c", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3 * maxDroppedRanges
	var dropped, delivered []uint64
	for i := range n {
		d := appendN(t, s, i, 1)[0]
		if k, err := c.SkipTo(d.Seq, true); err != nil || k != 1 {
			t.Fatalf("drop %d: %d %v", i, k, err)
		}
		g := appendN(t, s, i, 1)[0]
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		recs, err := c.Read(ctx, 1, 1<<20)
		cancel()
		if err != nil || len(recs) != 1 || recs[0].ID != g {
			t.Fatalf("read %d: %v %v", i, recs, err)
		}
		if err := c.Ack(g.Seq); err != nil {
			t.Fatal(err)
		}
		dropped, delivered = append(dropped, d.Seq), append(delivered, g.Seq)
	}
	check := func(c *Cursor, when string) {
		t.Helper()
		for i, seq := range dropped {
			switch {
			case i >= n-maxDroppedRanges+1 && (!c.Dropped(seq) || c.DropForgotten(seq)):
				t.Fatalf("%s: record %d, a recent drop, reads dropped %t, forgotten %t", when, seq, c.Dropped(seq), c.DropForgotten(seq))
			case !c.Dropped(seq) && !c.DropForgotten(seq):
				t.Fatalf("%s: record %d, dropped, reads neither dropped nor forgotten", when, seq)
			}
		}
		for i, seq := range delivered {
			switch {
			case c.Dropped(seq):
				t.Fatalf("%s: record %d, acknowledged, reads dropped", when, seq)
			case i >= n-maxDroppedRanges+1 && c.DropForgotten(seq):
				t.Fatalf("%s: record %d, acknowledged after a recent drop, reads forgotten", when, seq)
			}
		}
		if !c.DropForgotten(dropped[0]) || !c.DropForgotten(delivered[0]) {
			t.Fatalf("%s: the oldest drop and the record after it are not among the merged ones", when)
		}
		if c.DropForgotten(delivered[n-1]) || c.Dropped(delivered[n-1]) {
			t.Fatalf("%s: the last record reads dropped or forgotten", when)
		}
		if c.DroppedTotal() != n {
			t.Fatalf("%s: %d dropped counted, want %d", when, c.DroppedTotal(), n)
		}
	}
	check(c, "running")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{})
	c, err = s.Cursor("c", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check(c, "reopened")
}
