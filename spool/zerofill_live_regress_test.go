package spool

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/wal"
)

// liveWriter appends n 32 KiB records (about 30 per 1 MiB segment, so the
// tail is cycled every ~30 appends) in the background; done reports when
// it has finished.
func liveWriter(t *testing.T, s *Spool, n int) (done func() bool, wait func()) {
	t.Helper()
	// A cursor that never acks: no front truncation removes files under
	// the readers (a separate, older race: ErrNotExist).
	if _, err := s.Cursor("hold", CursorOptions{FromOldest: true}); err != nil {
		t.Fatal(err)
	}
	walSync = func(*wal.Log) error { return nil } // fsync is not what is tested
	t.Cleanup(func() { walSync = (*wal.Log).Sync })
	rec := bytes.Repeat([]byte{'p'}, 32<<10)
	var fin atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		defer fin.Store(true)
		for range n {
			if _, err := s.Append(context.Background(), rec); err != nil {
				t.Error(err)
				return
			}
		}
	})
	return fin.Load, wg.Wait
}

// Scan (used by the agent on a live spool: dead-letter replay/purge,
// ScanMeta) reads whole segment files: a live tail shrinks when it is
// cycled (its zero-filled room cut), and a Scan racing with a cycle must
// still return the records, not "unexpected EOF".
func TestScanOfALiveSpoolWhileTailsAreCut(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentBytes: 1 << 20})
	done, wait := liveWriter(t, s, 1500)
	defer wait()
	for i := 0; !done(); i++ {
		if err := s.Scan(time.Now(), func(Record) bool { return true }); err != nil {
			t.Fatalf("scan %d of a live spool: %v (segments: %d)", i, err, s.Stats().Segments)
		}
	}
}

// Verify (`sluice spool verify`) is documented as safe against the
// directory of a running agent; the same race makes it fail outright.
func TestVerifyOfALiveSpoolWhileTailsAreCut(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 1 << 20})
	done, wait := liveWriter(t, s, 1500)
	defer wait()
	for i := 0; !done(); i++ {
		if _, err := Verify(dir); err != nil {
			t.Fatalf("verify %d of a live spool: %v", i, err)
		}
	}
}
