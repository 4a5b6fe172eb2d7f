package spool

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDiskErrorOfAFailedTruncationClearsWhenReopenFinishesIt: a truncation
// fails part way (its START file cannot be renamed) and the reopen c.fail
// tries fails too; the obstacle goes and no append arrives. The commit
// loop's tick reopens the WAL, which finishes the truncation: the spool is
// healthy, and DiskError ("last write failure while it lasts":
// sluice_spool_disk_error, `sluice status`) clears. It went on reporting
// the failure for as long as the sidecar stayed idle. A failed write's error
// still lasts until a write succeeds. Found by review, with this test.
func TestDiskErrorOfAFailedTruncationClearsWhenReopenFinishesIt(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 4096, CursorSyncInterval: time.Hour, TruncateSegments: 1})
	a, err := s.Cursor("a", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	val := strings.Repeat("v", 500)
	var ids []ID
	for range 40 {
		id, err := s.Append(context.Background(), []byte(val))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	readAll(t, a, len(ids))
	s.mu.Lock()
	upTo := s.segs[len(s.segs)-2].last
	s.mu.Unlock()
	block := filepath.Join(s.walDir, segmentName(upTo))
	if err := os.MkdirAll(filepath.Join(block, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := a.Ack(ids[len(ids)-1].Seq); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return s.Stats().WriteErrors > 0 })
	time.Sleep(50 * time.Millisecond)
	if s.Stats().DiskError == "" {
		t.Fatal("setup: no disk error while the WAL cannot be opened")
	}
	if err := os.RemoveAll(block); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.truncGen%2 == 0
	})
	time.Sleep(300 * time.Millisecond) // several ticks more
	if st := s.Stats(); st.DiskError != "" {
		t.Fatalf("the WAL reopened and the truncation finished, yet DiskError still reads %q (write errors %d)", st.DiskError, st.WriteErrors)
	}
}
