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

// TestSecondCursorResumesWhereTheFirstSkipEnded: a second cursor that
// reaches damage in the tail after another reader's skip recorded where
// records start again (record 4, appended behind the damage, intact) goes
// on from there: it skipped to the segment's end and noted record 4 lost.
func TestSecondCursorResumesWhereTheFirstSkipEnded(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	a, err := s.Cursor("a", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Cursor("b", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, s, "one-aaaaaaaa", "two-bbbbbbbb", "three-cccccc")
	damageFraming(t, dir, "one-aaaaaaaa", "two-bbbbbbbb")
	if recs, err := a.Read(context.Background(), 10, 1<<20); err != nil || len(recs) != 1 {
		t.Fatalf("a first read: %d %v", len(recs), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	a.Read(ctx, 10, 1<<20) // skips 2..3, records resume point 4
	cancel()
	four := appendAll(t, s, "four-dddddd")[0]
	if recs, err := a.Read(context.Background(), 10, 1<<20); err != nil || len(recs) != 1 || recs[0].ID != four {
		t.Fatalf("a does not read record 4: %d %v", len(recs), err)
	}
	if s.Lost(four) {
		t.Fatalf("setup: record 4 lost before b read")
	}
	// b: record 1, then the damage.
	if recs, err := b.Read(context.Background(), 10, 1<<20); err != nil || len(recs) != 1 {
		t.Fatalf("b first read: %d %v", len(recs), err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var got []ID
	for {
		recs, err := b.Read(ctx, 10, 1<<20)
		if err != nil {
			break
		}
		for _, r := range recs {
			got = append(got, r.ID)
		}
		if len(got) > 0 {
			break
		}
	}
	if len(got) != 1 || got[0] != four {
		t.Errorf("cursor b read %v after the damage, want record 4 %v (intact, resume point known)", got, four)
	}
	if s.Lost(four) {
		t.Errorf("record 4 (intact, delivered to cursor a) is noted lost by cursor b's skip")
	}
}

// TestReadFromBeforeTheDamageResumesWhereASkipEnded: ReadFrom from the
// damaged record, after a skip recorded the resume point, goes on from
// there: it skipped to the segment's end and noted the intact records
// appended behind the damage lost.
func TestReadFromBeforeTheDamageResumesWhereASkipEnded(t *testing.T) {
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
	c.Read(ctx, 10, 1<<20)
	cancel()
	four := appendAll(t, s, "four-dddddd")[0]
	if recs, err := c.Read(context.Background(), 10, 1<<20); err != nil || len(recs) != 1 || recs[0].ID != four {
		t.Fatalf("cursor does not read record 4: %d %v", len(recs), err)
	}
	recs, err := s.ReadFrom(ids[1].Seq, 10, 1<<20)
	if err != nil || len(recs) != 1 || recs[0].ID != four {
		var got []ID
		for _, r := range recs {
			got = append(got, r.ID)
		}
		t.Errorf("ReadFrom(%d) = %v (%v), want record 4 %v", ids[1].Seq, got, err, four)
	}
	if s.Lost(four) {
		t.Errorf("record 4 (intact, already delivered) noted lost by ReadFrom's skip")
	}
}

// TestQuarantinedSequencesTakenAgainReadLostNeverDelivered: a quarantined
// segment's lost sequences are taken again when the segments after it go
// (a machine crash losing their unsynced directory entries under
// SyncNever; simulated by removing them): the quarantined segment becomes
// the tail and a later epoch appends at the lost sequences. The note keeps
// the highest epoch (the lost records' are not known), so those records
// read lost: the conservative side of the trade-off (settling the note to
// an open's epoch made lost records read delivered when meta was stale).
func TestQuarantinedSequencesTakenAgainReadLostNeverDelivered(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 4096, Sync: SyncNever, TruncateSegments: noTruncation}
	s := openT(t, dir, o)
	ids := appendAll(t, s, damagedSetRecs(10)...)
	s.Close()
	damageFraming(t, dir, damagedSetRec(1), damagedSetRec(2)) // segment 1..4: 2..4 quarantined
	s = openT(t, dir, o)
	if len(s.Recovery().Quarantined) != 1 || !s.Lost(ids[1]) {
		t.Fatalf("setup: quarantined %v, lost(2) %v", s.Recovery().Quarantined, s.Lost(ids[1]))
	}
	s.Close()
	// the segments after the quarantined one are lost
	matches, _ := filepath.Glob(filepath.Join(dir, "wal", "*"))
	for _, m := range matches {
		if filepath.Base(m) > segmentName(ids[0].Seq) {
			os.Remove(m)
		}
	}
	s = openT(t, dir, o)
	again := appendAll(t, s, "two-again")[0]
	if again.Seq != ids[1].Seq {
		t.Fatalf("setup: new record at %v, want sequence %d", again, ids[1].Seq)
	}
	if again.Epoch <= ids[1].Epoch {
		t.Fatalf("setup: epoch did not rise")
	}
	if !s.Lost(again) {
		t.Errorf("a later epoch's record %v at a quarantined sequence reads not lost", again)
	}
}

// TestRecreatedSpoolLeavesTheOldNoteOut: a spool recreated in place (meta,
// WAL and cursors removed, as the README describes: a new id, epochs start
// over) leaves out the lost-records note it finds, which names the old
// spool: the new spool's records at those sequences read lost otherwise.
func TestRecreatedSpoolLeavesTheOldNoteOut(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 4096, TruncateSegments: noTruncation}
	s := openT(t, dir, o)
	ids := appendAll(t, s, damagedSetRecs(10)...)
	s.Close()
	damageFraming(t, dir, damagedSetRec(1), damagedSetRec(2)) // segment 1..4: 2..4 quarantined
	s = openT(t, dir, o)
	if !s.Lost(ids[1]) {
		t.Fatalf("setup: not lost")
	}
	s.Close()
	for _, p := range []string{"meta", "wal", "cursors"} {
		if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	s = openT(t, dir, o)
	fresh := appendAll(t, s, "n1", "n2", "n3")
	for _, id := range fresh {
		if s.Lost(id) {
			t.Errorf("recreated spool's new record %v reads lost", id)
		}
	}
}

// TestLostMetaLeavesTheNoteOut: meta lost, WAL kept. A read skip noted
// sequences 5..7 lost at epoch 3; the restart cuts the damaged tail at 5
// and raises the epoch only above the last kept record's (epoch 1), to 2.
// The spool has a new id, so the note (the old id's) is left out: the new
// record at sequence 5 (epoch 2 <= 3) read lost.
func TestLostMetaLeavesTheNoteOut(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	appendAll(t, s, "r1-aaaaaaaa", "r2-aaaaaaaa", "r3-aaaaaaaa", "r4-aaaaaaaa")
	s.Close()
	s = openT(t, dir, Options{})
	s.Close()
	s = openT(t, dir, Options{})
	c, err := s.Cursor("a", CursorOptions{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	ids := appendAll(t, s, "r5-bbbbbbbb", "r6-bbbbbbbb", "r7-bbbbbbbb")
	damageFraming(t, dir, "r4-aaaaaaaa", "r5-bbbbbbbb")
	for n := 0; n < 4; {
		recs, err := c.Read(context.Background(), 10, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		n += len(recs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	c.Read(ctx, 10, 1<<20)
	cancel()
	if !s.Lost(ids[0]) {
		t.Fatalf("setup: 5 not lost")
	}
	s.Close()
	os.Remove(filepath.Join(dir, "meta"))
	s = openT(t, dir, Options{})
	again := appendAll(t, s, "r5-again")[0]
	if again.Seq != ids[0].Seq {
		t.Fatalf("setup: tail not cut: %v", again)
	}
	t.Logf("old record %v, new record %v", ids[0], again)
	if s.Lost(again) {
		t.Errorf("new record %v reads lost (note epoch %d, epoch raised only above the last kept record's)", again, ids[0].Epoch)
	}
}

func damagedSetRec(i int) string { return fmt.Sprintf("r%02d-%s", i, strings.Repeat("x", 1000)) }

func damagedSetRecs(n int) []string {
	var v []string
	for i := 1; i <= n; i++ {
		v = append(v, damagedSetRec(i))
	}
	return v
}
