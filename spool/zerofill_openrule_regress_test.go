package spool

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Recovery judges a segment's trailing zeros by the zero-fill rule of the
// run that wrote the segments. An open that dies after persisting its
// epoch and before recovery ran (kill -9, OOM, power loss, any Open error)
// must not leave its own rule in meta: after a switch from
// SLUICE_SPOOL_SYNC=interval to always, the interval run's machine-crash
// tail (acknowledged records come back as zeros) would be taken for
// zero-filled room, cut without a report.
func TestAnOpenThatDiesBeforeRecoveryKeepsThePreviousFillRule(t *testing.T) {
	const seg = 4 << 20
	interval := Options{Sync: SyncInterval, SyncInterval: time.Hour, SegmentBytes: seg}
	always := Options{Sync: SyncAlways, SegmentBytes: seg}
	// Frames of exactly 1 KiB (2-byte uvarint + 36-byte header + 986):
	// every record boundary is a multiple of 1 KiB, as with any uniform
	// message size that divides 1 MiB.
	p := bytes.Repeat([]byte{'v'}, 986)
	if n := len(encodeFrame(1, 1, 0, p)); n != 1024 {
		t.Fatalf("frame is %d bytes", n)
	}
	appendP := func(s *Spool, n int) {
		for range n {
			if _, err := s.Append(context.Background(), p); err != nil {
				t.Fatal(err)
			}
		}
	}
	src := t.TempDir()
	s := openT(t, src, interval)
	appendP(s, 10)
	s.Close() // durable up to here
	s = openT(t, src, interval)
	durable := s.Stats().DiskBytes
	appendP(s, 1024) // 1 MiB acknowledged under the interval policy, never fsynced
	crashed := t.TempDir()
	copyDir(t, src, crashed) // machine crash: the size survived, the data did not
	segPath := filepath.Join(crashed, "wal", segmentName(1))
	fi, err := os.Stat(segPath)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(segPath, os.O_WRONLY, 0)
	f.WriteAt(make([]byte, fi.Size()-durable), durable)
	f.Close()

	// Control: restarted straight with SYNC=always, the loss is reported.
	control := t.TempDir()
	copyDir(t, crashed, control)
	if rec := openT(t, control, always).Recovery(); rec.Clean() || rec.TailCutBytes == 0 {
		t.Fatalf("control: %+v", rec)
	}

	// The restart with SYNC=always dies inside Open right after writeMeta
	// (what Open does up to there: read meta, epoch+1, write meta with this
	// open's options), before recoverWAL cut anything.
	m, err := readMeta(filepath.Join(crashed, "meta"))
	if err != nil {
		t.Fatal(err)
	}
	always.setDefaults()
	dying := &Spool{dir: crashed, opts: always, id: m.ID, epoch: m.Epoch + 1, registry: m.Cursors}
	if err := dying.writeMeta(); err != nil {
		t.Fatal(err)
	}

	s3 := openT(t, crashed, always)
	rec := s3.Recovery()
	t.Logf("recovery: %+v, last seq %d, repairs %d", rec, s3.LastSeq(), s3.Stats().Repairs)
	if s3.LastSeq() != 10 {
		t.Fatalf("last seq %d, want 10", s3.LastSeq())
	}
	if rec.Clean() || rec.TailCutBytes == 0 || s3.Stats().Repairs == 0 {
		t.Fatalf("1024 acknowledged records were cut, yet recovery reports clean (ZeroFillBytes %d, TailCutBytes %d, repairs %d)",
			rec.ZeroFillBytes, rec.TailCutBytes, s3.Stats().Repairs)
	}
}

// The same with a real Open that fails after writeMeta (here: recovery
// finds both a .START and an .END file, ErrCorrupt; the operator removes
// the stray files and restarts): the failed open's rule is what the next
// open uses.
func TestAFailedOpenKeepsThePreviousFillRule(t *testing.T) {
	interval := Options{Sync: SyncInterval, SyncInterval: time.Hour, SegmentBytes: 4 << 20}
	always := Options{Sync: SyncAlways, SegmentBytes: 4 << 20, Logger: quiet()}
	p := bytes.Repeat([]byte{'v'}, 986) // 1 KiB frames
	src := t.TempDir()
	s := openT(t, src, interval)
	for range 10 {
		s.Append(context.Background(), p)
	}
	s.Close()
	s = openT(t, src, interval)
	durable := s.Stats().DiskBytes
	for range 1024 {
		if _, err := s.Append(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	copyDir(t, src, dir)
	segPath := filepath.Join(dir, "wal", segmentName(1))
	fi, _ := os.Stat(segPath)
	f, _ := os.OpenFile(segPath, os.O_WRONLY, 0)
	f.WriteAt(make([]byte, fi.Size()-durable), durable)
	f.Close()

	stray := []string{filepath.Join(dir, "wal", segmentName(5)+".START"), filepath.Join(dir, "wal", segmentName(6)+".END")}
	for _, p := range stray {
		os.WriteFile(p, nil, 0o640)
	}
	if sp, err := Open(dir, always); err == nil {
		sp.Close()
		t.Fatal("open with both .START and .END succeeded")
	} else {
		t.Logf("first open: %v", err)
	}
	for _, p := range stray {
		os.Remove(p)
	}
	s3 := openT(t, dir, always)
	rec := s3.Recovery()
	if s3.LastSeq() != 10 {
		t.Fatalf("last seq %d, want 10", s3.LastSeq())
	}
	if rec.Clean() || rec.TailCutBytes == 0 || s3.Stats().Repairs == 0 {
		t.Fatalf("1024 acknowledged records were cut, yet recovery reports clean: %+v, repairs %d", rec, s3.Stats().Repairs)
	}
}
