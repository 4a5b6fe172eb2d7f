package spool

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/nofds"
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
	// second's: no descriptor is free for it.
	restore := nofds.Starve(t, c.f)
	recs, rerr := read()
	restore()
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

// TestTransientReadErrorsThenRewindReadEveryRecordOnce: a Read that fails for
// want of a descriptor, in the middle of a segment already open and at a
// segment boundary, then Rewind: every record comes back once, in order,
// nothing noted lost; ReadFrom and Get under the same condition return an
// error and note nothing lost either.
func TestTransientReadErrorsThenRewindReadEveryRecordOnce(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentBytes: 4096, TruncateSegments: noTruncation})
	big := strings.Repeat("x", 1500)
	var vals []string
	for i := 0; i < 9; i++ {
		vals = append(vals, big)
	}
	ids := appendAll(t, s, vals...)
	c, err := s.Cursor("a", CursorOptions{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	read := func() ([]Record, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Read(ctx, 1, 1<<20)
	}
	var got []ID
	for i := 0; i < 9; i++ {
		restore := nofds.Starve(t)
		recs, rerr := read()
		restore()
		if rerr != nil {
			// At a segment boundary: nothing moved; read it now.
			if recs, rerr = read(); rerr != nil {
				t.Fatalf("read %d: %v", i, rerr)
			}
		}
		if len(recs) != 1 {
			t.Fatalf("read %d: %d records", i, len(recs))
		}
		got = append(got, recs[0].ID)
		if i == 4 {
			c.Rewind()
			c.closeFile()
			restore := nofds.Starve(t)
			_, rerr := read()
			restore()
			if rerr == nil {
				t.Fatal("read after rewind without descriptors succeeded")
			}
			got = got[:0]
			for j := 0; j <= 4; j++ {
				recs, err := read()
				if err != nil || len(recs) != 1 {
					t.Fatalf("reread %d: %v", j, err)
				}
				got = append(got, recs[0].ID)
			}
		}
	}
	for i := range ids {
		if got[i] != ids[i] {
			t.Fatalf("record %d: %v want %v", i, got[i], ids[i])
		}
	}
	restore := nofds.Starve(t)
	_, ferr := s.ReadFrom(ids[3].Seq, 10, 1<<20)
	_, gerr := s.Get(ids[5].Seq)
	restore()
	if ferr == nil || gerr == nil {
		t.Fatalf("ReadFrom/Get without descriptors: %v %v", ferr, gerr)
	}
	st := s.Stats()
	if st.Corruptions != 0 || st.LostRecords != 0 {
		t.Fatalf("corruptions %d lost %d", st.Corruptions, st.LostRecords)
	}
}
