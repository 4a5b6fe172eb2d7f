package spool

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// damageFraming overwrites, in place, the frame header of the record whose
// payload is marker (its first bytes after the record before it), so that
// its framing no longer parses: what bit rot or an outside write does.
func damageFraming(t *testing.T, dir, before, marker string) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*"))
	for _, p := range segs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte(marker)) {
			continue
		}
		at := 0
		if before != "" {
			i := bytes.Index(b, []byte(before))
			if i < 0 {
				t.Fatalf("%q not in the segment of %q", before, marker)
			}
			at = i + len(before)
		}
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteAt([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, int64(at)) // a length no frame has
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("%q not on disk", marker)
}

func appendAll(t *testing.T, s *Spool, values ...string) []ID {
	t.Helper()
	var ids []ID
	for _, v := range values {
		id, err := s.Append(context.Background(), []byte(v))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// TestReadSkipOfDamagedFramingNotesTheRecordsLost: framing damaged after
// Open makes a cursor's read skip the rest of the segment, the damaged
// record and the whole one after it alike; the spool notes both lost (a
// cursor then moves past them as past delivered ones), keeps the note
// across a restart, and does not take the records of a later epoch that
// reuse their sequences (the restart cuts the damaged tail) for lost.
func TestReadSkipOfDamagedFramingNotesTheRecordsLost(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	c, err := s.Cursor("a", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ids := appendAll(t, s, "one-aaaaaaaa", "two-bbbbbbbb", "three-cccccc")
	damageFraming(t, dir, "one-aaaaaaaa", "two-bbbbbbbb")
	recs, err := c.Read(context.Background(), 10, 1<<20)
	if err != nil || len(recs) != 1 || string(recs[0].Data) != "one-aaaaaaaa" {
		t.Fatalf("first read: %d records, %v", len(recs), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if recs, err := c.Read(ctx, 10, 1<<20); len(recs) != 0 {
		t.Fatalf("read past the damage handed out %d records (%v)", len(recs), err)
	}
	for i, want := range []bool{false, true, true} {
		if got := s.Lost(ids[i]); got != want {
			t.Errorf("record %d: lost %v, want %v", i+1, got, want)
		}
	}
	if n := s.Stats().LostRecords; n != 2 {
		t.Errorf("LostRecords %d, want 2", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openT(t, dir, Options{})
	defer s.Close()
	if !s.Lost(ids[1]) || !s.Lost(ids[2]) || s.Lost(ids[0]) {
		t.Errorf("after a restart: lost %v %v %v, want false true true", s.Lost(ids[0]), s.Lost(ids[1]), s.Lost(ids[2]))
	}
	again := appendAll(t, s, "two-again")
	if again[0].Seq != ids[1].Seq {
		t.Fatalf("the damaged tail was not cut: new record at %v", again[0])
	}
	if s.Lost(again[0]) {
		t.Errorf("a later epoch's record at the lost sequence %d reads lost", again[0].Seq)
	}
}

// TestReadFromSkipsDamagedFramingAndNotesIt: ReadFrom, which the agent's
// catch-up reads use, skips a damaged segment's rest and goes on with the
// next segment instead of failing every call (a lane waiting on it never
// moved again), and notes what it skipped lost.
func TestReadFromSkipsDamagedFramingAndNotesIt(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 4096, TruncateSegments: noTruncation})
	defer s.Close()
	big := strings.Repeat("x", 5000) // a segment each: one is cycled once past SegmentBytes
	ids := appendAll(t, s, "one-"+big, "two-"+big, "three-"+big)
	if s.Stats().Segments < 3 {
		t.Fatalf("%d segments, want one per record", s.Stats().Segments)
	}
	damageFraming(t, dir, "", "two-")
	recs, err := s.ReadFrom(ids[1].Seq, 10, 1<<20)
	if err != nil {
		t.Fatalf("ReadFrom over damaged framing: %v", err)
	}
	if len(recs) != 1 || recs[0].ID != ids[2] {
		t.Fatalf("ReadFrom gave %d records, want only record 3", len(recs))
	}
	if s.Lost(ids[0]) || !s.Lost(ids[1]) || s.Lost(ids[2]) {
		t.Errorf("lost %v %v %v, want false true false", s.Lost(ids[0]), s.Lost(ids[1]), s.Lost(ids[2]))
	}
}

// TestQuarantineAtOpenNotesTheRecordsLost: framing damaged inside a closed
// segment is quarantined at Open with the rest of that segment (records
// 2 and 3: the first segment is cycled once past SegmentBytes); they are
// noted lost, and still are after another Open (the damage is gone from
// the segment by then). Record 4, in the next segment, is not.
func TestQuarantineAtOpenNotesTheRecordsLost(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 4096, TruncateSegments: noTruncation})
	big := strings.Repeat("x", 1500)
	ids := appendAll(t, s, "one-"+big, "two-"+big, "three-"+big, "four-"+big)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	damageFraming(t, dir, "one-"+big, "two-")
	s = openT(t, dir, Options{SegmentBytes: 4096, TruncateSegments: noTruncation})
	if len(s.Recovery().Quarantined) == 0 {
		t.Fatalf("nothing quarantined: %+v", s.Recovery())
	}
	if s.Stats().FirstSeq != ids[0].Seq || s.Recovery().Quarantined[0].LostRecords != 2 {
		t.Fatalf("quarantine: %+v", s.Recovery().Quarantined)
	}
	want := []bool{false, true, true, false}
	check := func(when string) {
		for i, w := range want {
			if got := s.Lost(ids[i]); got != w {
				t.Errorf("%s: record %d lost %v, want %v", when, i+1, got, w)
			}
		}
	}
	check("after the quarantine")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{SegmentBytes: 4096, TruncateSegments: noTruncation})
	defer s.Close()
	check("after another open")
}
