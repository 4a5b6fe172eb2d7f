package spool

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sluiceio/sluice/internal/nofds"
)

// atTheCap opens a drop_oldest spool with one cursor and n undelivered
// records of 500 bytes, the cap half a record above them: the next append
// must drop the oldest record or two.
func atTheCap(t *testing.T, n int) (*Spool, *Cursor, []byte) {
	t.Helper()
	val := []byte(strings.Repeat("v", 500))
	f := int64(uvarintLen(uint64(headerSize+len(val))) + headerSize + len(val))
	if per := (4096 + f - 1) / f; int64(n)%per == per-1 {
		t.Fatalf("the next append would cycle the segment (%d per segment)", per)
	}
	s := openT(t, t.TempDir(), Options{SegmentBytes: 4096, MaxBytes: int64(n)*f + f/2, FullPolicy: DropOldest, TruncateSegments: noTruncation})
	c, err := s.Cursor("a", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := s.Append(context.Background(), val); err != nil {
			t.Fatal(err)
		}
	}
	if d := s.Stats().Dropped; d != 0 {
		t.Fatalf("dropped %d before the cap", d)
	}
	return s, c, val
}

// TestDropOldestWithoutDescriptorsRefusesInsteadOfDroppingTheBacklog: when
// the segment holding the drop point cannot be opened for a moment (no
// descriptor free), the append over the cap is refused (ErrFull, the writer
// retries) and nothing is dropped; once files open again the same append
// drops the oldest record or two. Any error finding the drop point dropped
// every cursor to the tail: one append over the cap by half a record
// dropped all 20 undelivered records.
func TestDropOldestWithoutDescriptorsRefusesInsteadOfDroppingTheBacklog(t *testing.T) {
	const n = 20
	s, c, val := atTheCap(t, n)
	restore := nofds.Starve(t)
	_, aerr := s.Append(context.Background(), val)
	restore()
	if d := s.Stats().Dropped; d != 0 || !errors.Is(aerr, ErrFull) {
		t.Fatalf("append over the cap without descriptors: %v, dropped %d of %d undelivered records (cursor acked %d, last %d); want ErrFull and none dropped",
			aerr, d, n, c.Acked(), s.LastSeq())
	}
	if _, err := s.Append(context.Background(), val); err != nil {
		t.Fatalf("append over the cap with descriptors free again: %v", err)
	}
	if d := s.Stats().Dropped; d < 1 || d > 2 {
		t.Fatalf("dropped %d, want 1 or 2", d)
	}
}

// TestDropOldestOverTheCapDropsTheOldest: with descriptors free, the
// append over the cap drops the oldest record or two (the set-up's
// arithmetic holds).
func TestDropOldestOverTheCapDropsTheOldest(t *testing.T) {
	s, _, val := atTheCap(t, 20)
	if _, err := s.Append(context.Background(), val); err != nil {
		t.Fatal(err)
	}
	if d := s.Stats().Dropped; d < 1 || d > 2 {
		t.Fatalf("dropped %d, want 1 or 2", d)
	}
}
