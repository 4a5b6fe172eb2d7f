package spool

import (
	"os"
	"path/filepath"
	"testing"
)

// Epochs only rise, also when meta is unreadable or gone while the WAL
// keeps its records: the open goes on above the last record's epoch (and
// says so in meta), so that state kept by (sequence, epoch) beside the
// spool is not taken for a recreated spool's. A spool recreated in place
// (no records) still starts at epoch 1.
func TestLostMetaKeepsEpochsRising(t *testing.T) {
	for _, tc := range []struct {
		name string
		lose func(path string) error
	}{
		{"unreadable", func(p string) error { return os.WriteFile(p, []byte("{garbage"), 0o640) }},
		{"removed", os.Remove},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var last ID
			for range 3 {
				s := openT(t, dir, Options{})
				ids := appendN(t, s, 0, 2)
				last = ids[len(ids)-1]
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if last.Epoch != 3 {
				t.Fatalf("three opens wrote their last record in epoch %d", last.Epoch)
			}
			if err := tc.lose(filepath.Join(dir, "meta")); err != nil {
				t.Fatal(err)
			}
			s := openT(t, dir, Options{})
			if s.Epoch() <= last.Epoch {
				t.Fatalf("open after meta was lost has epoch %d; the last record's is %d", s.Epoch(), last.Epoch)
			}
			id := appendN(t, s, 10, 1)[0]
			if id.Seq != last.Seq+1 || id.Epoch != s.Epoch() {
				t.Fatalf("next record %+v after %+v, open epoch %d", id, last, s.Epoch())
			}
			e := s.Epoch()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// meta says so: the next open goes on from there.
			if s := openT(t, dir, Options{}); s.Epoch() != e+1 {
				t.Fatalf("open after that has epoch %d, want %d", s.Epoch(), e+1)
			}
		})
	}
	// Recreated in place: no records, epoch 1.
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	appendN(t, s, 0, 2)
	s.Close()
	for _, n := range []string{"meta", "wal", "cursors"} {
		if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	if s := openT(t, dir, Options{}); s.Epoch() != 1 {
		t.Fatalf("recreated spool opens at epoch %d", s.Epoch())
	}
}
