package spool

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// tmpfs mounts a small tmpfs: a real ENOSPC. Root only.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: a real full disk needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("skipping: cannot mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

func TestDiskFull(t *testing.T) {
	mnt := tmpfs(t, "1m")
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 400<<10), 0o640); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mnt, "spool")
	o := Options{SegmentBytes: 64 << 10, Logger: quiet()}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cursor("hold", CursorOptions{}); err != nil {
		t.Fatal(err)
	}
	var acked [][]byte
	var full error
	for i := 0; i < 2000; i++ {
		p := bytes.Repeat([]byte{byte(i)}, 1000)
		if _, err := s.Append(context.Background(), p); err != nil {
			full = err
			break
		}
		acked = append(acked, p)
	}
	if !errors.Is(full, ErrDiskFull) {
		t.Fatalf("expected ErrDiskFull after %d appends, got %v", len(acked), full)
	}
	if st := s.Stats(); st.DiskError == "" || st.WriteErrors == 0 {
		t.Fatalf("stats %+v", st)
	}
	s.Close()

	// Reopen on the still-full disk: clean, everything acknowledged intact.
	s, err = Open(dir, o)
	if err != nil {
		t.Fatalf("reopen on a full disk: %v", err)
	}
	defer s.Close()
	c, err := s.Cursor("hold", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, c, len(acked))
	for i, r := range recs {
		if !bytes.Equal(r.Data, acked[i]) {
			t.Fatalf("record %d differs after disk full", i)
		}
	}
	readNone(t, c)

	// Space returns: appends work again.
	os.Remove(filler)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.Append(context.Background(), []byte("back"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("appends did not recover: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := readAll(t, c, 1); string(r[0].Data) != "back" {
		t.Fatalf("read %q", r[0].Data)
	}
}
