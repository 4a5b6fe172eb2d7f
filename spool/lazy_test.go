package spool

import (
	"context"
	"testing"
	"time"
)

// Under SyncAlways a lazy append is written but not fsynced on its own;
// the next ordinary append's fsync covers it, and without one the sync
// timer does. Both kinds read back after a reopen.
func TestAppendLazyRidesOnTheNextFsync(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Sync: SyncAlways, SyncInterval: time.Hour})
	ctx := context.Background()
	before := s.Stats().Fsyncs
	if _, err := s.AppendLazy(ctx, payload(1)); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Fsyncs; got != before {
		t.Fatalf("a lazy append fsynced on its own: %d fsyncs, want %d", got, before)
	}
	if _, err := s.Append(ctx, payload(2)); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Fsyncs; got != before+1 {
		t.Fatalf("an ordinary append after a lazy one: %d fsyncs, want %d", got, before+1)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{Sync: SyncAlways})
	c, err := s.Cursor("r", CursorOptions{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, c, 2)
	for i, r := range recs {
		if string(r.Data) != string(payload(i+1)) {
			t.Fatalf("record %d: %q", i, r.Data)
		}
	}
}

func TestAppendLazySyncedByTheTimer(t *testing.T) {
	s := openT(t, t.TempDir(), Options{Sync: SyncAlways, SyncInterval: 10 * time.Millisecond})
	before := s.Stats().Fsyncs
	if _, err := s.AppendLazy(context.Background(), payload(1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return s.Stats().Fsyncs > before })
	// Nothing dirty any more: the timer does not fsync again.
	n := s.Stats().Fsyncs
	time.Sleep(50 * time.Millisecond)
	if got := s.Stats().Fsyncs; got != n {
		t.Fatalf("idle spool fsynced %d more times", got-n)
	}
}
