package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/tidwall/wal"
)

// reopenCursor closes s, opens its directory again and returns cursor "c".
func reopenCursor(t *testing.T, s *Spool, dir string) *Cursor {
	t.Helper()
	s.Close()
	c, err := openT(t, dir, Options{SegmentBytes: 64 << 10}).Cursor("c", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// failFsync makes the n-th WAL fsync from now fail with EIO.
func failFsync(t *testing.T, n int64) *atomic.Int64 {
	t.Helper()
	var calls atomic.Int64
	walSync = func(l *wal.Log) error {
		if calls.Add(1) == n {
			return &os.PathError{Op: "sync", Path: "wal", Err: syscall.EIO}
		}
		return l.Sync()
	}
	t.Cleanup(func() { walSync = (*wal.Log).Sync })
	return &calls
}

// A failed fsync fails the appends it covered, and only those are lost:
// the files are cut back, later appends succeed, and a reader (before and
// after a reopen) sees exactly the acknowledged records.
func TestFailedFsyncFailsItsGroupAndNothingElse(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 64 << 10})
	c, err := s.Cursor("c", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	failFsync(t, 3)

	var acked [][]byte
	failed := 0
	for i := 0; i < 10; i++ {
		p := []byte(fmt.Sprintf("record-%d", i))
		_, err := s.Append(context.Background(), p)
		switch {
		case err == nil:
			acked = append(acked, p)
		case errors.Is(err, ErrIO):
			failed++
		default:
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if failed != 1 || len(acked) != 9 {
		t.Fatalf("%d failed, %d acknowledged; want 1 and 9", failed, len(acked))
	}
	if st := s.Stats(); st.WriteErrors != 1 || st.DiskError != "" {
		t.Fatalf("stats after recovery: write errors %d, disk error %q", st.WriteErrors, st.DiskError)
	}
	check := func(c *Cursor) {
		t.Helper()
		recs := readAll(t, c, len(acked))
		for i, r := range recs {
			if !bytes.Equal(r.Data, acked[i]) {
				t.Fatalf("record %d: %q, want %q", i, r.Data, acked[i])
			}
		}
		readNone(t, c)
	}
	check(c)
	check(reopenCursor(t, s, dir))
}

// Under concurrent appends a failed fsync may fail several groups written
// while it ran; whatever was acknowledged is there, in order, and nothing
// that failed is.
func TestFailedFsyncUnderConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 64 << 10})
	c, err := s.Cursor("c", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	failFsync(t, 20)

	const writers, each = 16, 200
	var mu sync.Mutex
	acked := map[string]bool{}
	failed := 0
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				p := fmt.Sprintf("w%d-%d", w, i)
				_, err := s.Append(context.Background(), []byte(p), []byte(p+"-b"))
				mu.Lock()
				if err == nil {
					acked[p] = true
				} else if errors.Is(err, ErrIO) {
					failed++
				} else {
					t.Errorf("append: %v", err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed == 0 {
		t.Fatal("no append failed: the injected fsync failure was not seen")
	}
	check := func(c *Cursor) {
		t.Helper()
		recs := readAll(t, c, 2*len(acked))
		last := map[int]int{}
		for i := 0; i < len(recs); i += 2 {
			p := string(recs[i].Data)
			if !acked[p] || string(recs[i+1].Data) != p+"-b" {
				t.Fatalf("record %d: %q, %q: not an acknowledged request", i, p, recs[i+1].Data)
			}
			var w, n int
			fmt.Sscanf(p, "w%d-%d", &w, &n)
			if prev, ok := last[w]; ok && n <= prev {
				t.Fatalf("writer %d: %d after %d", w, n, prev)
			}
			last[w] = n
		}
		readNone(t, c)
	}
	check(c)
	check(reopenCursor(t, s, dir))
	t.Logf("%d requests acknowledged, %d failed", len(acked), failed)
}
