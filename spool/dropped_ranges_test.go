package spool

import (
	"context"
	"testing"
	"time"
)

// A cursor's memory of drops is bounded, but a dropped record never stops
// reading as dropped: past maxDroppedRanges separate drops the oldest are
// merged (with the delivered records between them, which then read as
// dropped too), not forgotten, also across a reopen. Before (found by
// review), the oldest range was let go, and its records read delivered.
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
		for _, seq := range dropped {
			if !c.Dropped(seq) {
				t.Fatalf("%s: record %d, dropped, reads not dropped", when, seq)
			}
		}
		// The records delivered between the recent drops are exact.
		for _, seq := range delivered[n-maxDroppedRanges+1 : n-1] {
			if c.Dropped(seq) {
				t.Fatalf("%s: record %d, delivered after a recent drop, reads dropped", when, seq)
			}
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
