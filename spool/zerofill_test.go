package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// tailFile returns the tail segment's path and its size on disk.
func tailFile(t *testing.T, s *Spool) (string, int64) {
	t.Helper()
	s.mu.Lock()
	p := s.segs[len(s.segs)-1].path
	s.mu.Unlock()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, fi.Size()
}

// Under SyncAlways the open tail segment is zero-filled past its records,
// so that the fsyncs that follow write the records' blocks only; closing
// cuts it back to its records, and a reopen finds a clean spool.
func TestZeroFilledTailIsCutAtClose(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 256 << 10})
	appendN(t, s, 0, 20)
	logical := s.Stats().DiskBytes
	path, size := tailFile(t, s)
	if want := int64(256<<10) + 64<<10; size != want {
		t.Fatalf("open tail is %d bytes on disk, want it zero-filled to %d (records end at %d)", size, want, logical)
	}
	b, _ := os.ReadFile(path)
	if !allZero(b[logical:]) {
		t.Fatal("bytes past the records are not zeros")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Size() != logical {
		t.Fatalf("closed tail is %d bytes, its records %d", fi.Size(), logical)
	}
	s = openT(t, dir, Options{SegmentBytes: 256 << 10})
	if rec := s.Recovery(); !rec.Clean() || rec.ZeroFillBytes != 0 {
		t.Fatalf("recovery after a clean close: %+v", rec)
	}
}

// Policies that do not fsync every commit do not zero-fill.
func TestNoZeroFillWithoutSyncAlways(t *testing.T) {
	for _, p := range []SyncPolicy{SyncInterval, SyncNever} {
		s := openT(t, t.TempDir(), Options{Sync: p})
		appendN(t, s, 0, 20)
		if _, size := tailFile(t, s); size != s.Stats().DiskBytes {
			t.Fatalf("%s: tail is %d bytes on disk, its records %d", p, size, s.Stats().DiskBytes)
		}
	}
}

// A crash (the directory as a kill -9 leaves it) leaves the zeros in
// place: recovery cuts them without calling it damage, keeps every
// record, and appends go on, zero-filled again.
func TestCrashWithZeroFilledTail(t *testing.T) {
	s, dir, ids, logical := crashCopy(t, 256<<10)
	if _, size := tailFile(t, s); size <= logical {
		t.Fatalf("tail not zero-filled: %d bytes, records %d", size, logical)
	}

	s2 := openT(t, dir, Options{SegmentBytes: 256 << 10})
	rec := s2.Recovery()
	if !rec.Clean() || rec.TailCutBytes != 0 || rec.ZeroFillBytes != int64(256<<10)+64<<10-logical {
		t.Fatalf("recovery: %+v (records end at %d)", rec, logical)
	}
	c, _ := s2.Cursor("r", CursorOptions{FromOldest: true})
	recs := readAll(t, c, 20)
	for i, r := range recs {
		if r.ID.Seq != ids[i].Seq || !bytes.Equal(r.Data, payload(i)) {
			t.Fatalf("record %d: %+v", i, r.ID)
		}
	}
	readNone(t, c)
	id, err := s2.Append(context.Background(), []byte("after"))
	if err != nil || id.Seq != 21 {
		t.Fatalf("append after recovery: %+v %v", id, err)
	}
	if r := readAll(t, c, 1); string(r[0].Data) != "after" {
		t.Fatalf("read %q", r[0].Data)
	}
	if _, size := tailFile(t, s2); size <= s2.Stats().DiskBytes {
		t.Fatalf("tail not zero-filled again after recovery: %d bytes", size)
	}
}

// A record torn inside the zero-filled room (a machine crash in the middle
// of a write) is damage, reported as before, and cut with the zeros.
func TestTornRecordInZeroFilledTail(t *testing.T) {
	_, dir, _, logical := crashCopy(t, 256<<10)
	seg := filepath.Join(dir, "wal", segmentName(1))
	frame := encodeFrame(1, 21, 0, []byte("a record the crash tore in half"))
	f, err := os.OpenFile(seg, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(frame[:len(frame)/2], logical); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s2 := openT(t, dir, Options{SegmentBytes: 256 << 10})
	rec := s2.Recovery()
	if rec.TailCutBytes == 0 || rec.Clean() {
		t.Fatalf("a torn record was not reported: %+v", rec)
	}
	if s2.LastSeq() != 20 {
		t.Fatalf("last seq %d, want 20", s2.LastSeq())
	}
}

// Sealed segments are cut to their records when the next one starts; a
// sealed segment that still ends with zero-filled room (should its cut not
// have been durable) loses nothing and is not quarantined.
func TestSealedSegmentsHoldOnlyRecords(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 64 << 10, TruncateSegments: noTruncation})
	n := fillSegments(t, s, 3)
	s.mu.Lock()
	sealed := append([]segment(nil), s.segs[:len(s.segs)-1]...)
	s.mu.Unlock()
	for _, sg := range sealed {
		if fi, err := os.Stat(sg.path); err != nil || fi.Size() != sg.size {
			t.Fatalf("sealed segment %s: %v, %d bytes on disk, records %d", filepath.Base(sg.path), err, fi.Size(), sg.size)
		}
	}
	s.Close()
	limit := int64(64<<10) + zeroFillSlack // as far as a fill goes
	if err := os.Truncate(sealed[0].path, limit); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{SegmentBytes: 64 << 10, TruncateSegments: noTruncation})
	rec := s.Recovery()
	if len(rec.Quarantined) != 0 || rec.ZeroFillBytes != limit-sealed[0].size || !rec.Clean() {
		t.Fatalf("recovery: %+v", rec)
	}
	c, _ := s.Cursor("r", CursorOptions{FromOldest: true})
	if recs := readAll(t, c, n); len(recs) != n {
		t.Fatalf("read %d records, want %d", len(recs), n)
	}
}

// encodeFrame is one record as the WAL holds it: tidwall/wal's uvarint
// length, the envelope header, the payload.
func encodeFrame(epoch uint32, seq uint64, unixNano int64, payload []byte) []byte {
	e := make([]byte, headerSize, headerSize+len(payload))
	e = append(e, payload...)
	putHeader(e, epoch, unixNano, e[headerSize:])
	sealHeader(e, seq)
	return append(binary.AppendUvarint(nil, uint64(len(e))), e...)
}

// Zero-filled room is what a fill gives: the fill size past the end of a
// commit's records (or up to the limit). A crash copy of a spool with
// large segments ends exactly there and recovers clean; zeros of any
// other size are a torn tail, reported as before.
func TestZeroFillRoomHasTheFillsSize(t *testing.T) {
	_, crashed, _, logical := crashCopy(t, 8<<20)
	seg := filepath.Join(crashed, "wal", segmentName(1))
	fi, err := os.Stat(seg)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() >= int64(8<<20) || fi.Size() <= logical {
		t.Fatalf("tail is %d bytes on disk, records %d: want a fill past the first record", fi.Size(), logical)
	}
	odd := t.TempDir()
	copyDir(t, crashed, odd)
	if err := os.Truncate(filepath.Join(odd, "wal", segmentName(1)), fi.Size()-1); err != nil {
		t.Fatal(err)
	}

	s2 := openT(t, crashed, Options{SegmentBytes: 8 << 20})
	if rec := s2.Recovery(); !rec.Clean() || rec.ZeroFillBytes != fi.Size()-logical {
		t.Fatalf("crash copy: %+v (records end at %d, file %d)", rec, logical, fi.Size())
	}
	s3 := openT(t, odd, Options{SegmentBytes: 8 << 20})
	if rec := s3.Recovery(); rec.Clean() || rec.TailCutBytes != fi.Size()-1-logical || rec.ZeroFillBytes != 0 {
		t.Fatalf("zeros of another size: %+v", rec)
	}
	for _, sp := range []*Spool{s2, s3} {
		if sp.LastSeq() != 20 {
			t.Fatalf("last seq %d, want 20", sp.LastSeq())
		}
	}
}

// crashCopy appends 20 records to a spool of the given segment size and
// copies its directory while it is open, as a kill -9 leaves it: the open
// spool, the copy, the records' ids and where the records end.
func crashCopy(t *testing.T, segmentBytes int64) (*Spool, string, []ID, int64) {
	t.Helper()
	src := t.TempDir()
	s := openT(t, src, Options{SegmentBytes: segmentBytes})
	ids := appendN(t, s, 0, 20)
	dir := t.TempDir()
	copyDir(t, src, dir)
	return s, dir, ids, s.Stats().DiskBytes
}
