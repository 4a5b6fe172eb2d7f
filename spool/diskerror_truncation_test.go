package spool

import (
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
