package spool

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/syncbuf"
)

// crashAfterTruncationFailedPartWay: cursor a acknowledged everything, cursor b only part;
// the truncation up to b's persisted position fails part way (its START
// file cannot be renamed). A crash in that state, and the healed live
// spool, must both keep every record b has not acknowledged, and note
// none lost.
func crashAfterTruncationFailedPartWay(t *testing.T, o Options) {
	var logs syncbuf.Buffer
	o.SegmentBytes, o.CursorSyncInterval, o.TruncateSegments = 4096, time.Hour, 1
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	dir := t.TempDir()
	s := openT(t, dir, o)
	a, err := s.Cursor("a", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Cursor("b", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	val := []byte(strings.Repeat("v", 500))
	var ids []ID
	for range 60 {
		id, err := s.Append(context.Background(), val)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	readAll(t, a, len(ids))
	rb := readAll(t, b, len(ids))
	s.mu.Lock()
	n := len(s.segs)
	bAck := s.segs[n-3].last + 2 // b passed n-3 whole segments and two records
	upTo := s.segs[n-3].last
	if n < 5 {
		s.mu.Unlock()
		t.Fatalf("setup: %d segments", n)
	}
	s.mu.Unlock()
	_ = rb
	block := filepath.Join(s.walDir, segmentName(upTo))
	if err := os.MkdirAll(filepath.Join(block, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := a.Ack(ids[len(ids)-1].Seq); err != nil {
		t.Fatal(err)
	}
	// b: up to a record in the middle, so the truncation is up to the
	// segment before b's.
	if err := b.Ack(bAck); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "spool still failing") })
	s.mu.Lock()
	upToAsked := s.segs[0].first
	s.mu.Unlock()
	t.Logf("segments %d, upTo %d, b acked %d, segs[0].first %d", n, upTo, bAck, upToAsked)

	// A crash now.
	crash := t.TempDir()
	copyDir(t, dir, crash, block)
	s2 := openT(t, crash, Options{SegmentBytes: 4096, CursorSyncInterval: time.Hour, TruncateSegments: noTruncation})
	t.Logf("recovery after a crash in the failed truncation: %+v", s2.Recovery())
	b2, err := s2.Cursor("b", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := len(ids) - int(bAck)
	got := readAll(t, b2, want)
	if got[0].ID.Seq != bAck+1 || got[len(got)-1].ID.Seq != ids[len(ids)-1].Seq {
		t.Fatalf("after a crash in a failed truncation, b reads %d..%d, want %d..%d", got[0].ID.Seq, got[len(got)-1].ID.Seq, bAck+1, ids[len(ids)-1].Seq)
	}
	for _, id := range ids {
		if s2.Lost(id) {
			t.Fatalf("after a crash in a failed truncation, record %d noted lost", id.Seq)
		}
	}
	old, err := s2.Cursor("old", CursorOptions{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	recs, err := old.Read(ctx, 1000, 1<<20)
	cancel()
	if err != nil || len(recs) == 0 {
		t.Fatalf("cursor from the oldest after the crash: %v", err)
	}
	if st := s2.Stats(); st.Corruptions > 0 || st.LostRecords > 0 {
		t.Fatalf("after a crash in a failed truncation: %d corruptions, %d lost", st.Corruptions, st.LostRecords)
	}

	// The live spool heals.
	if err := os.RemoveAll(block); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		id, err := s.Append(context.Background(), val)
		if err == nil {
			ids = append(ids, id)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("append after healing: %v", err)
		}
	}
	got = readAll(t, b, 1)
	if got[len(got)-1].ID.Seq != ids[len(ids)-1].Seq {
		t.Fatalf("b reads %d after healing, want %d", got[len(got)-1].ID.Seq, ids[len(ids)-1].Seq)
	}
	b.Rewind()
	got = readAll(t, b, len(ids)-int(bAck))
	if got[0].ID.Seq != bAck+1 {
		t.Fatalf("b rewound reads from %d, want %d", got[0].ID.Seq, bAck+1)
	}
	noneLost(t, s, ids, "healed live spool")
	s.Close()
	s3 := openT(t, dir, Options{SegmentBytes: 4096, CursorSyncInterval: time.Hour, TruncateSegments: noTruncation})
	b3, err := s3.Cursor("b", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got = readAll(t, b3, len(ids)-int(bAck))
	if got[0].ID.Seq != bAck+1 {
		t.Fatalf("after restart b reads from %d, want %d", got[0].ID.Seq, bAck+1)
	}
	noneLost(t, s3, ids, "after restart")
}

// noneLost fails unless s notes none of ids lost and counts no corruption
// and no lost record.
func noneLost(t *testing.T, s *Spool, ids []ID, when string) {
	t.Helper()
	for _, id := range ids {
		if s.Lost(id) {
			t.Fatalf("%s: record %d noted lost", when, id.Seq)
		}
	}
	if st := s.Stats(); st.Corruptions > 0 || st.LostRecords > 0 {
		t.Fatalf("%s: %d corruptions, %d lost", when, st.Corruptions, st.LostRecords)
	}
}

func TestCrashAfterATruncationFailedPartWayAlways(t *testing.T) {
	crashAfterTruncationFailedPartWay(t, Options{})
}
func TestCrashAfterATruncationFailedPartWayInterval(t *testing.T) {
	crashAfterTruncationFailedPartWay(t, Options{Sync: SyncInterval, SyncInterval: 10 * time.Millisecond})
}
func TestCrashAfterATruncationFailedPartWayNever(t *testing.T) {
	crashAfterTruncationFailedPartWay(t, Options{Sync: SyncNever})
}
