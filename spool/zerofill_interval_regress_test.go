package spool

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A spool that never zero-fills (SYNC=interval) loses its unsynced tail in
// a machine crash; on file systems that persist the size before the data
// (XFS, ext4 data=writeback, ...) that tail comes back as zeros. Those
// records were acknowledged (under the interval policy): recovery must
// report the cut (TailCutBytes, Stats.Repairs, the "spool recovered"
// warning), not take the zeros for zero-filled room.
func TestMachineCrashZerosOfANonZeroFillingSpoolAreReported(t *testing.T) {
	src := t.TempDir()
	o := Options{Sync: SyncInterval, SyncInterval: time.Hour}
	s := openT(t, src, o)
	appendN(t, s, 0, 10)
	s.Close() // durable up to here
	s = openT(t, src, o)
	durable := s.Stats().DiskBytes
	appendN(t, s, 10, 10) // acknowledged (interval policy), never fsynced
	if s.LastSeq() != 20 {
		t.Fatalf("last %d", s.LastSeq())
	}
	dir := t.TempDir()
	copyDir(t, src, dir) // the process died with the machine
	// The machine crash: the file's size survived, its unsynced data did not.
	seg := filepath.Join(dir, "wal", segmentName(1))
	fi, err := os.Stat(seg)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(seg, os.O_WRONLY, 0)
	f.WriteAt(make([]byte, fi.Size()-durable), durable)
	f.Close()

	s2 := openT(t, dir, o)
	rec := s2.Recovery()
	if s2.LastSeq() != 10 {
		t.Fatalf("last seq %d after the crash, want 10", s2.LastSeq())
	}
	if rec.Clean() || rec.TailCutBytes == 0 || s2.Stats().Repairs == 0 {
		t.Fatalf("10 acknowledged records were cut from a spool that never zero-fills, yet recovery reports clean: %+v, repairs %d",
			rec, s2.Stats().Repairs)
	}
}
