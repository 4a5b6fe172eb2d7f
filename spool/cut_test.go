package spool

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sluiceio/sluice/internal/walcut"
)

// A record an earlier open wrote past the tail a machine crash kept is
// cut, and so is one whose sequence a later open used again; records that
// survived, and this open's, are not.
func TestCutNamesRecordsACrashCutFromTheTail(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Sync: SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := s.Append(context.Background(), []byte("old")); err != nil {
			t.Fatal(err)
		}
	}
	e1 := s.Epoch()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	walcut.KeepFirst(t, filepath.Join(dir, "wal", segmentName(1)), 5) // a machine crash lost the unsynced rest

	s = openT(t, dir, Options{Sync: SyncNever})
	if s.LastSeq() != 5 {
		t.Fatalf("last seq %d after the cut, want 5", s.LastSeq())
	}
	if _, err := s.Append(context.Background(), []byte("new"), []byte("new")); err != nil { // seqs 6, 7 again
		t.Fatal(err)
	}
	e2 := s.Epoch()
	for _, c := range []struct {
		id   ID
		want bool
	}{
		{ID{Epoch: e1, Seq: 5}, false}, // survived
		{ID{Epoch: e1, Seq: 6}, true},  // cut; its sequence holds another record now
		{ID{Epoch: e1, Seq: 8}, true},  // cut; its sequence is free
		{ID{Epoch: e2, Seq: 6}, false}, // this open's
		{ID{Epoch: e2, Seq: 9}, false}, // this open's, not written yet: not cut
	} {
		if got := s.Cut(c.id); got != c.want {
			t.Errorf("Cut(%+v) = %v, want %v", c.id, got, c.want)
		}
	}
}
