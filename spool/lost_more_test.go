package spool

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadFromFindsRecordsAppendedAfterASkippedStretch: framing damaged
// in the tail segment. A cursor's read skips the rest of the tail as it
// was then (records 2, 3) and reads record 4, appended afterwards and
// intact. ReadFrom(4) returns it too, from the point the skip recorded:
// it parsed the tail from a mark before the damage, skipped record 4 and
// noted it lost, and so every record appended to that tail until it
// cycled.
func TestReadFromFindsRecordsAppendedAfterASkippedStretch(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	c, err := s.Cursor("a", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ids := appendAll(t, s, "one-aaaaaaaa", "two-bbbbbbbb", "three-cccccc")
	damageFraming(t, dir, "one-aaaaaaaa", "two-bbbbbbbb")
	if recs, err := c.Read(context.Background(), 10, 1<<20); err != nil || len(recs) != 1 {
		t.Fatalf("first read: %d %v", len(recs), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if recs, _ := c.Read(ctx, 10, 1<<20); len(recs) != 0 {
		t.Fatalf("read past the damage handed out %d", len(recs))
	}
	four := appendAll(t, s, "four-dddddd")[0]
	recs, err := c.Read(context.Background(), 10, 1<<20)
	if err != nil || len(recs) != 1 || recs[0].ID != four {
		t.Fatalf("the cursor does not read record 4: %d %v", len(recs), err)
	}
	recs, err = s.ReadFrom(four.Seq, 10, 1<<20)
	if err != nil || len(recs) != 1 || recs[0].ID != four {
		t.Errorf("ReadFrom(%d) gave %d records (%v), want record 4, intact and read by the cursor", four.Seq, len(recs), err)
	}
	if s.Lost(four) {
		t.Errorf("record 4, appended after the damage was skipped and intact, is noted lost")
	}
	_ = ids
}

// TestReadFromSkipsASegmentCutShort: a closed segment shorter on disk
// than its published size (cut short by an outside write: what commit
// 24ca2a1 saw in CI). A cursor's read skips it and notes it lost, and so
// does ReadFrom: it failed on every call, and the catch-up of a spilled
// lane retried once a second and never moved.
func TestReadFromSkipsASegmentCutShort(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 4096, TruncateSegments: noTruncation})
	big := strings.Repeat("x", 5000)
	ids := appendAll(t, s, "one-"+big, "two-"+big, "three-"+big)
	if s.Stats().Segments < 3 {
		t.Fatalf("%d segments", s.Stats().Segments)
	}
	p := filepath.Join(dir, "wal", segmentName(ids[1].Seq))
	if err := os.Truncate(p, 100); err != nil {
		t.Fatal(err)
	}
	c, err := s.Cursor("b", CursorOptions{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []ID
	for len(got) < 2 {
		recs, err := c.Read(context.Background(), 10, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			got = append(got, r.ID)
		}
	}
	if got[1] != ids[2] {
		t.Fatalf("cursor read %v", got)
	}
	for i := 0; i < 3; i++ {
		recs, err := s.ReadFrom(ids[1].Seq, 10, 1<<20)
		if err != nil {
			t.Fatalf("ReadFrom over a segment cut short, call %d: %v (a cursor skips it)", i+1, err)
		}
		if len(recs) != 1 || recs[0].ID != ids[2] {
			t.Fatalf("ReadFrom gave %d records, want record 3", len(recs))
		}
	}
}

// TestLoadLostKeepsAtMostMaxRanges: a lost-records file with more lines
// than maxLostRanges (written by hand, or by another build) is merged down
// to the bound at Open (it was loaded whole, and Lost scanned every range
// on every status).
func TestLoadLostKeepsAtMostMaxRanges(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := 1; i <= 5000; i++ {
		fmt.Fprintf(&b, "%d %d 1\n", 10*i, 10*i)
	}
	if err := os.WriteFile(filepath.Join(dir, lostFileName), []byte(b.String()), 0o640); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{})
	defer s.Close()
	if n := len(*s.lost.Load()); n > maxLostRanges {
		t.Errorf("%d lost ranges in memory after Open, want at most %d", n, maxLostRanges)
	}
	if !s.Lost(ID{Epoch: 1, Seq: 10}) || !s.Lost(ID{Epoch: 1, Seq: 50000}) {
		t.Errorf("a loaded range no longer reads lost")
	}
}
