package spool

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLostMetaQuarantineStaysLostAfterTheNextOpen: meta
// lost, the quarantined records (epoch 10) are the last of the WAL (empty
// tail) and above every record recovery parsed (epoch 1). The open without
// meta keeps the note at MaxUint32 (its epoch, 2, is below the records'),
// and the next open, which reads the meta that open wrote, settles only its
// own quarantines' notes: records (10, 2..4) stay lost (settled to 3, they
// read not lost).
func TestLostMetaQuarantineStaysLostAfterTheNextOpen(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 4096, TruncateSegments: noTruncation}
	s := openT(t, dir, o)
	appendAll(t, s, damagedSetRec(1)) // (1, 1)
	s.Close()
	for i := 0; i < 8; i++ { // epochs 2..9, no records
		s = openT(t, dir, o)
		s.Close()
	}
	s = openT(t, dir, o) // epoch 10
	ids := appendAll(t, s, damagedSetRec(2), damagedSetRec(3), damagedSetRec(4))
	s.Close()
	s = openQuarantinedWithoutMeta(t, dir, o)
	for _, id := range ids {
		if !s.Lost(id) {
			t.Fatalf("setup: %v not lost at the quarantining open (epoch %d)", id, s.Epoch())
		}
	}
	s.Close()
	s = openT(t, dir, o)
	for _, id := range ids {
		if !s.Lost(id) {
			b, _ := os.ReadFile(filepath.Join(dir, lostFileName))
			t.Errorf("quarantined record %v reads not lost after the next open (epoch %d, note %q)", id, s.Epoch(), b)
		}
	}
}

// TestHugeNoteEpochDoesNotWrapTheEpoch: meta intact (epoch 1), the note
// names epoch 4294967294 (an outside edit or damage to the note). With
// meta read the note's epochs do not raise the open's (it was raised to
// MaxUint32, and the next open's wrapped to 0): epochs keep rising.
func TestHugeNoteEpochDoesNotWrapTheEpoch(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	s.Close()
	if err := os.WriteFile(filepath.Join(dir, lostFileName), []byte("1000 1000 4294967294\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{})
	e1 := s.Epoch()
	ids := appendAll(t, s, "a")
	s.Close()
	s = openT(t, dir, Options{})
	e2 := s.Epoch()
	if e2 <= e1 || e2 <= ids[0].Epoch {
		t.Errorf("epochs: open with the note %d (record %v), next open %d: the epoch did not rise", e1, ids[0], e2)
	}
}
