package spool

import (
	"os"
	"path/filepath"
	"testing"
)

// quarantineAfterLostMeta: records 1..4 of epoch 3 fill the first
// segment, which cycles (the tail segment, 5.., is left empty). Record 2's
// framing is damaged and meta is removed; the open quarantines 2..4.
func quarantineAfterLostMeta(t *testing.T) (string, Options, []ID, *Spool) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 4096, TruncateSegments: noTruncation}
	for i := 0; i < 2; i++ { // epochs 1 and 2, no records
		s := openT(t, dir, o)
		s.Close()
	}
	s := openT(t, dir, o)
	ids := appendAll(t, s, damagedSetRecs(4)...)
	s.Close()
	s = openQuarantinedWithoutMeta(t, dir, o)
	return dir, o, ids, s
}

// TestQuarantineWithLostMetaAndEmptyTailStaysLost: meta lost, the last
// sequence (4) just quarantined. The open raised its epoch above the last
// record's only when Get(s.last) answered, so it stayed 1, and the note,
// settled to it, no longer covered the lost records (epoch 3). Without meta
// the note now keeps the highest epoch, and the epoch rises above every
// parsed record's.
func TestQuarantineWithLostMetaAndEmptyTailStaysLost(t *testing.T) {
	_, _, ids, s := quarantineAfterLostMeta(t)
	for _, id := range ids[1:] {
		if !s.Lost(id) {
			t.Errorf("record %v quarantined at this open reads not lost (note %+v, open epoch %d)", id, *s.lost.Load(), s.Epoch())
		}
	}
}

// TestLostMetaWithEmptyTailEpochRises: with meta lost and the last
// sequence gone to a quarantine, the open's epoch rises above the records'
// epochs (it stayed at 1, below them: ids could repeat).
func TestLostMetaWithEmptyTailEpochRises(t *testing.T) {
	_, _, ids, s := quarantineAfterLostMeta(t)
	if s.Epoch() <= ids[3].Epoch {
		t.Errorf("epoch %d after a lost meta, not above the records' (%d)", s.Epoch(), ids[3].Epoch)
	}
}

// openQuarantinedWithoutMeta damages the framing after record 1 of the
// damaged set, removes meta and opens the spool: its first segment's
// records 2..4 are quarantined.
func openQuarantinedWithoutMeta(t *testing.T, dir string, o Options) *Spool {
	t.Helper()
	damageFraming(t, dir, damagedSetRec(1), damagedSetRec(2))
	if err := os.Remove(filepath.Join(dir, "meta")); err != nil {
		t.Fatal(err)
	}
	s := openT(t, dir, o)
	if q := s.Recovery().Quarantined; len(q) != 1 || q[0].FirstLost != 2 || q[0].LostRecords != 3 {
		t.Fatalf("setup: quarantined %+v", q)
	}
	return s
}
