package spool

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A drop recorded range 1..10 in the cursor file (synced); a machine crash
// then cut the spool's unsynced tail to 7. The sequences 8..10, taken again
// after the cut by records of a later epoch that were never dropped, read
// and acknowledged, do not read dropped: the drops past the tail go with
// it, as acked and born do (TestBornBeyondCutTail). Before (found by a
// second review), the range was kept, and sinks and queues reported those
// records dropped.
func TestDropsPastACutTailGoWithIt(t *testing.T) {
	s, c := droppedThenCut(t, t.TempDir(), Options{})
	if c.Acked() != 7 {
		t.Fatalf("acked %d after the cut, want 7", c.Acked())
	}
	if !c.Dropped(7) || c.Dropped(8) {
		t.Fatalf("after the cut: record 7 dropped %t, 8 dropped %t", c.Dropped(7), c.Dropped(8))
	}
	again := appendN(t, s, 100, 3) // seq 8..10 again, a later epoch, never dropped
	r := readAll(t, c, 3)
	if r[0].ID != again[0] {
		t.Fatalf("read %+v, want %+v", r[0].ID, again[0])
	}
	if err := c.Ack(again[2].Seq); err != nil {
		t.Fatal(err)
	}
	for _, id := range again {
		if c.Dropped(id.Seq) || c.DropForgotten(id.Seq) {
			t.Fatalf("record %+v, appended after the cut, read and acknowledged, reads dropped %t, drop-forgotten %t",
				id, c.Dropped(id.Seq), c.DropForgotten(id.Seq))
		}
	}
}

// droppedThenCut: cursor "c" dropped records 1..10, then a machine crash
// cut 8..10 (cutLastThree); the spool at dir reopened with o.
func droppedThenCut(t *testing.T, dir string, o Options) (*Spool, *Cursor) {
	t.Helper()
	dropAllThenCut(t, dir, o, "c")
	s := openT(t, dir, o)
	c, err := s.Cursor("c", CursorOptions{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// dropAllThenCut: in a spool at dir opened with o, the named cursors
// dropped records 1..10, and after the spool closed a machine crash cut
// 8..10 (cutLastThree); the spool stays closed.
func dropAllThenCut(t *testing.T, dir string, o Options, cursors ...string) {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet()
	}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 0, 10)
	for _, name := range cursors {
		c, err := s.Cursor(name, CursorOptions{FromOldest: true})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := c.SkipTo(10, true); err != nil || n != 10 {
			t.Fatalf("drop: %d %v", n, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cutLastThree(t, dir)
}

// cutLastThree cuts records 8..10 (of appendN(t, s, 0, 10), one segment)
// from the closed spool at dir: a machine crash before they were synced.
func cutLastThree(t *testing.T, dir string) {
	t.Helper()
	seg := filepath.Join(dir, "wal", segmentName(1))
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	lost := frameSize(len(payload(7))) + frameSize(len(payload(8))) + frameSize(len(payload(9)))
	if err := os.WriteFile(seg, b[:len(b)-lost], 0o640); err != nil {
		t.Fatal(err)
	}
}

func TestCutDrops(t *testing.T) {
	for _, tc := range []struct {
		in, want []Range
		last     uint64
	}{
		{[]Range{{1, 3}, {5, 9}}, []Range{{1, 3}, {5, 9}}, 9},
		{[]Range{{1, 3}, {5, 9}}, []Range{{1, 3}, {5, 7}}, 7},
		{[]Range{{1, 3}, {5, 9}}, []Range{{1, 3}}, 4},
		{[]Range{{6, 1}, {8, 9}}, []Range{{6, 1}}, 7}, // merged 1..6 kept
		{[]Range{{6, 1}, {8, 9}}, []Range{{4, 1}}, 4}, // merged cut to 1..4
		{[]Range{{6, 2}, {8, 9}}, []Range{{2, 2}}, 2}, // merged cut to one record: dropped
		{[]Range{{6, 3}, {8, 9}}, []Range{}, 2},       // all past the tail
	} {
		got, cut := cutDrops(tc.in, tc.last)
		if !slices.Equal(got, tc.want) || cut != !slices.Equal(tc.in, tc.want) {
			t.Errorf("cutDrops(%v, %d) = %v, %t; want %v", tc.in, tc.last, got, cut, tc.want)
		}
	}
}
