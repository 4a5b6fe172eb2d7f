package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"

	"github.com/tidwall/wal"
)

// Failed fsyncs of the spool whose rounds another spool's fsyncs ride in
// (SyncVia) fail only that spool's appends: while every fsync of main's
// file fails, the log's appends, run in the same rounds, all succeed and
// read back after a reopen.
func TestSyncViaOtherSpoolsFailuresStayTheirs(t *testing.T) {
	mainDir, logDir := t.TempDir(), t.TempDir()
	main := openT(t, mainDir, Options{Sync: SyncAlways})
	log := openT(t, logDir, Options{Sync: SyncAlways, SyncVia: main})
	ctx := context.Background()
	logWL := log.wl // the log's handle; it changes only if one of its own writes fails
	walSync = func(l *wal.Log) error {
		if l != logWL {
			return &os.PathError{Op: "sync", Path: "wal", Err: syscall.EIO}
		}
		return l.Sync()
	}
	t.Cleanup(func() { walSync = (*wal.Log).Sync })

	var wg sync.WaitGroup
	logErrs := make(chan error, 400)
	for w := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 50 {
				main.Append(ctx, []byte(fmt.Sprintf("m%d-%d", w, i))) // fails
			}
		}()
		go func() {
			defer wg.Done()
			for i := range 50 {
				if _, err := log.AppendLazy(ctx, []byte(fmt.Sprintf("z%d-%d", w, i))); err != nil {
					logErrs <- err
				}
				if _, err := log.Append(ctx, []byte(fmt.Sprintf("l%d-%d", w, i))); err != nil {
					logErrs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(logErrs)
	for err := range logErrs {
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("log append while main's fsyncs fail: %v", err)
		}
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	log = openT(t, logDir, Options{Sync: SyncAlways})
	c, err := log.Cursor("r", CursorOptions{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, c, 400)
}

// Closing the spool whose rounds carry the fsyncs, while the other spool
// appends (ordinary and lazy) from several goroutines, stalls nothing: every
// append returns, without an error, and every one reads back.
func TestSyncViaCloseUnderLoad(t *testing.T) {
	mainDir, logDir := t.TempDir(), t.TempDir()
	main := openT(t, mainDir, Options{Sync: SyncAlways})
	log := openT(t, logDir, Options{Sync: SyncAlways, SyncVia: main})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for w := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 100 {
				if _, err := main.Append(ctx, []byte(fmt.Sprintf("m%d-%d", w, i))); err != nil && !errors.Is(err, ErrClosed) {
					errs <- err
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := range 100 {
				var err error
				if i%2 == 0 {
					_, err = log.AppendLazy(ctx, []byte(fmt.Sprintf("l%d-%d", w, i)))
				} else {
					_, err = log.Append(ctx, []byte(fmt.Sprintf("l%d-%d", w, i)))
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	go func() {
		for i := 0; log.Stats().Commits < 50 && i < 1e6; i++ {
			runtime.Gosched()
		}
		main.Close()
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	log = openT(t, logDir, Options{Sync: SyncAlways})
	c, err := log.Cursor("r", CursorOptions{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, c, 400)
}
