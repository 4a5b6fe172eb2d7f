package spool

import (
	"context"
	"os"
	"strings"
	"testing"
)

// TestDropAtASegmentEndKeepsTheNextSegment: drop_oldest needs to drop
// exactly the first segment (the drop point is its end, a segment
// boundary), and does, without reading the next segment, whose first frame
// is damaged. segIndexAt puts a boundary in the next segment: the drop read
// that one, found the damage and dropped it whole, intact records
// included, none of which had to go. Found by review, with this test.
func TestDropAtASegmentEndKeepsTheNextSegment(t *testing.T) {
	dir := t.TempDir()
	val := []byte(strings.Repeat("v", 20))
	f := int64(frameSize(len(val)))
	const segBytes = 16384
	per := (segBytes + f - 1) / f // records in a full segment
	if per < 2*markEvery {
		t.Fatalf("setup: %d records per segment", per)
	}
	n := 2*per + 10
	s := openT(t, dir, Options{SegmentBytes: segBytes, TruncateSegments: noTruncation})
	if _, err := s.Cursor("a", CursorOptions{}); err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := s.Append(context.Background(), val); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	if len(s.segs) != 3 || s.segs[0].size != per*f || s.tailPos != n*f {
		t.Fatalf("setup: %d segments, first %d bytes, tail at %d", len(s.segs), s.segs[0].size, s.tailPos)
	}
	s.mu.Unlock()
	s.Close()

	// The next append is over the cap by exactly the first segment.
	s = openT(t, dir, Options{SegmentBytes: segBytes, TruncateSegments: noTruncation,
		FullPolicy: DropOldest, MaxBytes: (n + 1 - per) * f})
	a, err := s.Cursor("a", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	seg0, seg1 := s.segs[0], s.segs[1]
	s.mu.Unlock()
	// Damage the second segment's first frame.
	fh, err := os.OpenFile(seg1.path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteAt([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0); err != nil {
		t.Fatal(err)
	}
	fh.Close()

	if _, err := s.Append(context.Background(), val); err != nil {
		t.Fatal(err)
	}
	if got := a.Acked(); got >= seg1.first+markEvery {
		r, gerr := s.Get(seg1.first + markEvery)
		t.Logf("Get(%d) after the drop: %d bytes, %v (intact on disk)", seg1.first+markEvery, len(r.Data), gerr)
		t.Fatalf("an append over the cap by the first segment (records %d..%d) dropped up to %d (counted %d): the whole second segment (%d..%d), whose records from %d on are intact, though none of it had to go",
			seg0.first, seg0.last, got, s.Stats().Dropped, seg1.first, seg1.last, seg1.first+markEvery)
	}
}
