package spool

import (
	"path/filepath"
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
	s, _, _, heal := truncationFailingPartWay(t)
	if s.Stats().DiskError == "" {
		t.Fatal("setup: no disk error while the WAL cannot be opened")
	}
	heal()
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

// TestDiskErrorOfATruncationOnAFullDiskStays: a truncation that fails
// because the disk is full (its START file finds no space) leaves a disk
// error that a reopen does not clear: the WAL reopens fine on a full disk,
// which stays full, and sluice_spool_disk_error must not flap to 0 while it
// is. It clears at the next write that works, as a failed write's does.
func TestDiskErrorOfATruncationOnAFullDiskStays(t *testing.T) {
	mnt := tmpfs(t, "1m")
	s, a, ids := readBacklog(t, filepath.Join(mnt, "spool"), Options{SegmentBytes: 4096, CursorSyncInterval: time.Hour, TruncateSegments: 1}, 40)
	if err := a.Ack(ids[0].Seq); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil { // a's position file, written in place from now on
		t.Fatal(err)
	}
	if err := a.Ack(ids[len(ids)-1].Seq); err != nil {
		t.Fatal(err)
	}
	fillLeaving(t, mnt, 0)
	if err := s.Flush(); err != nil { // asks for the truncation, which finds no space
		t.Fatal(err)
	}
	waitFor(t, func() bool { // the truncation failed, and a reopen finished it
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.st.writeErrors.Load() > 0 && s.truncGen%2 == 0
	})
	st := s.Stats()
	if st.WriteErrors == 0 {
		t.Fatalf("setup: the truncation did not fail on the full disk (truncations %d)", st.Truncations)
	}
	if st.DiskError == "" {
		t.Fatalf("the disk is still full, yet DiskError cleared once the WAL reopened (write errors %d)", st.WriteErrors)
	}
}
