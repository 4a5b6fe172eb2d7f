package spool

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadErrorThatIsNotDamageSkipsNothing: a segment that cannot be
// opened for a reason other than damage (here the process is out of file
// descriptors, as a sidecar holding thousands of connections can be) is not
// skipped: Read returns the error, notes nothing lost and moves nothing,
// and the records read once files open again. A cursor skipped the rest of
// the segment on any read error, noting its records lost: they were never
// delivered and their statuses read unknown.
func TestReadErrorThatIsNotDamageSkipsNothing(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 4096, TruncateSegments: noTruncation})
	big := strings.Repeat("x", 5000) // a segment each
	ids := appendAll(t, s, "one-"+big, "two-"+big, "three-"+big)
	c, err := s.Cursor("a", CursorOptions{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	read := func() ([]Record, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Read(ctx, 1, 1<<20)
	}
	if recs, err := read(); err != nil || len(recs) != 1 || recs[0].ID != ids[0] {
		t.Fatalf("first read: %d records %v", len(recs), err)
	}
	// The next read closes the first segment's file and opens the
	// second's: no descriptor from the first's number on is allowed.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	free := f.Fd() // the lowest free descriptor, free again after Close
	f.Close()
	low := lim
	low.Cur = uint64(min(free, c.f.Fd())) // the lowest free one once the first segment's is closed
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	recs, rerr := read()
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(rerr, syscall.EMFILE) || len(recs) != 0 {
		t.Fatalf("read without a free descriptor: %d records %v, want EMFILE", len(recs), rerr)
	}
	if s.Lost(ids[1]) || s.Stats().Corruptions != 0 {
		t.Fatalf("a read that could not open a file noted records lost (lost(two) %v, corruptions %d)", s.Lost(ids[1]), s.Stats().Corruptions)
	}
	if n := s.Stats().ReadErrors; n != 1 {
		t.Fatalf("read errors counted: %d, want 1", n)
	}
	for _, want := range ids[1:] {
		if recs, err := read(); err != nil || len(recs) != 1 || recs[0].ID != want {
			t.Fatalf("read after descriptors are free again: %d records %v, want %v", len(recs), err, want)
		}
	}
}
