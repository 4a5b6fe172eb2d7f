package spool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// A spool with SyncVia fsyncs in the other spool's commit rounds: its
// appends still return after their own file's fsync (they read back after
// a reopen), concurrent appends to both make progress, and once the other
// spool is closed it fsyncs itself.
func TestSyncViaSharesRoundsAndOutlivesTheOther(t *testing.T) {
	mainDir, logDir := t.TempDir(), t.TempDir()
	main := openT(t, mainDir, Options{Sync: SyncAlways})
	log := openT(t, logDir, Options{Sync: SyncAlways, SyncVia: main})
	ctx := context.Background()

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if _, err := main.Append(ctx, []byte(fmt.Sprintf("m%d-%d", w, i))); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := range 50 {
				if _, err := log.Append(ctx, []byte(fmt.Sprintf("l%d-%d", w, i))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := log.Stats(); st.Fsyncs != st.Commits {
		t.Fatalf("log: %d commits, %d fsyncs: every commit of ordinary appends is fsynced", st.Commits, st.Fsyncs)
	}

	if err := main.Close(); err != nil {
		t.Fatal(err)
	}
	before := log.Stats().Fsyncs
	if _, err := log.Append(ctx, []byte("after")); err != nil {
		t.Fatalf("append after the other spool closed: %v", err)
	}
	if got := log.Stats().Fsyncs; got != before+1 {
		t.Fatalf("fsyncs after the other spool closed: %d, want %d", got, before+1)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	log = openT(t, logDir, Options{Sync: SyncAlways})
	c, err := log.Cursor("r", CursorOptions{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	if recs := readAll(t, c, 201); string(recs[200].Data) != "after" {
		t.Fatalf("last record %q", recs[200].Data)
	}
}

// An fsync that fails in the other spool's round fails the appends it
// covered, of this spool only: the other spool's own appends go on.
func TestSyncViaFailedFsyncFailsOnlyItsOwnAppend(t *testing.T) {
	main := openT(t, t.TempDir(), Options{Sync: SyncAlways})
	log := openT(t, t.TempDir(), Options{Sync: SyncAlways, SyncVia: main})
	ctx := context.Background()
	if _, err := main.Append(ctx, []byte("m0")); err != nil {
		t.Fatal(err)
	}
	failFsync(t, 1) // the next fsync: the log's, run in main's loop
	if _, err := log.Append(ctx, []byte("l0")); !errors.Is(err, ErrIO) {
		t.Fatalf("log append with a failing fsync: %v, want ErrIO", err)
	}
	if _, err := main.Append(ctx, []byte("m1")); err != nil {
		t.Fatalf("main append after the log's failure: %v", err)
	}
	if _, err := log.Append(ctx, []byte("l1")); err != nil {
		t.Fatalf("log append after recovery: %v", err)
	}
	if st := main.Stats(); st.WriteErrors != 0 {
		t.Fatalf("main: %d write errors", st.WriteErrors)
	}
}
