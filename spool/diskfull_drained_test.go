package spool

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// diskFullDrained: a spool that itself filled the disk (a sink was down),
// whose sink then took everything: the front truncation is what gives the
// space back, nothing outside the spool frees any, and appends come back
// without an append having to reopen anything first.
func diskFullDrained(t *testing.T, sync SyncPolicy, noFreePage bool) {
	mnt := tmpfs(t, "1m")
	if err := os.WriteFile(filepath.Join(mnt, "filler"), make([]byte, 400<<10), 0o640); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mnt, "spool")
	s := openT(t, dir, Options{SegmentBytes: 32 << 10, Sync: sync, SyncInterval: 20 * time.Millisecond,
		CursorSyncInterval: 20 * time.Millisecond, TruncateSegments: 1})
	c, err := s.Cursor("a", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var full error
	for i := 0; i < 5000; i++ {
		if _, err := s.Append(context.Background(), bytes.Repeat([]byte{byte(i)}, 1000)); err != nil {
			full = err
			break
		}
		n++
	}
	if !errors.Is(full, ErrDiskFull) {
		t.Fatalf("setup: %d appends then %v", n, full)
	}
	if noFreePage {
		// Something else on the disk took the pages the failed write's
		// cut gave back: not one is free.
		fillLeaving(t, mnt, 0)
	}
	recs := readAll(t, c, n)
	if err := c.Ack(recs[len(recs)-1].ID.Seq); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.Append(context.Background(), []byte("after the drain"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			s.mu.Lock()
			segs, tg := len(s.segs), s.truncGen
			s.mu.Unlock()
			t.Fatalf("a drained spool on the disk it filled never took an append again: %v (segments %d, truncGen %d, stats %+v)", err, segs, tg, s.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDiskFullDrainedBySinkRecoversAlways(t *testing.T) {
	diskFullDrained(t, SyncAlways, false)
}

func TestDiskFullNoFreePageDrainedBySinkRecovers(t *testing.T) {
	diskFullDrained(t, SyncAlways, true)
}

func TestDiskFullDrainedBySinkRecoversInterval(t *testing.T) {
	diskFullDrained(t, SyncInterval, false)
}

func TestDiskFullDrainedBySinkRecoversNever(t *testing.T) {
	diskFullDrained(t, SyncNever, false)
}
