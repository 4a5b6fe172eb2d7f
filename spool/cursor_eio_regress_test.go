package spool

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// failingBlockFS mounts an ext4 file system on a loop device whose backing file
// lives, fully allocated, on a small tmpfs: punching a hole in the backing
// file and filling the tmpfs makes writes to that one block fail (EIO /
// ENOSPC from the loop device), while the rest of the file system works.
func failingBlockFS(t *testing.T) (mnt, img, tmp string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	tmp = t.TempDir()
	run := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Skipf("%s %v: %v %s", name, args, err, out)
		}
		return string(out)
	}
	run("mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", tmp)
	t.Cleanup(func() { exec.Command("umount", "-l", tmp).Run() })
	img = filepath.Join(tmp, "img")
	run("fallocate", "-l", "32m", img)
	run("mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", img)
	loop := regexp.MustCompile(`\S+`).FindString(run("losetup", "-f", "--show", img))
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })
	mnt = filepath.Join(tmp, "mnt")
	os.Mkdir(mnt, 0o755)
	run("mount", loop, mnt)
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	return mnt, img, tmp
}

var filefragExtent = regexp.MustCompile(`(?m)^\s*\d+:\s+(\d+)\.\.\s*(\d+):\s+(\d+)\.\.`)

// physBlocks is the physical 4 KiB block of each logical block of path.
func physBlocks(t *testing.T, path string) map[int64]int64 {
	t.Helper()
	out, err := exec.Command("filefrag", "-v", "-b4096", path).CombinedOutput()
	if err != nil {
		t.Fatalf("filefrag: %v %s", err, out)
	}
	m := map[int64]int64{}
	for _, g := range filefragExtent.FindAllStringSubmatch(string(out), -1) {
		lo, _ := strconv.ParseInt(g[1], 10, 64)
		hi, _ := strconv.ParseInt(g[2], 10, 64)
		ph, _ := strconv.ParseInt(g[3], 10, 64)
		for l := lo; l <= hi; l++ {
			m[l] = ph + l - lo
		}
	}
	return m
}

// deviceCursorState decodes the cursor file as the device holds it (what a power
// loss would leave), reading the loop device's backing file directly.
func deviceCursorState(t *testing.T, img string, phys map[int64]int64) (cursorState, error) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, cursorFileSize)
	for l := int64(0); l < 2; l++ {
		if _, err := f.ReadAt(b[l*cursorSlot:(l+1)*cursorSlot], phys[l]*4096); err != nil {
			t.Fatal(err)
		}
	}
	return decodeCursor(b)
}

// An in-place slot write whose fdatasync fails (EIO) is left in the live
// cursor file's page cache. The failing spool handles it (persisted
// stays), but a restart without a reboot (process crash, or the agent
// restarted by its supervisor) reads the failed slot back from the page
// cache. It must not take it as persisted, or truncation runs past what
// the disk holds: a restart takes the older slot's position as persisted
// (that one was written before a successful fdatasync) until its first
// persist. The old format never exposed a failed write: it went to a temp
// file that was removed.
func TestFailedFdatasyncSlotIsNotTrustedAfterRestart(t *testing.T) {
	mnt, img, tmp := failingBlockFS(t)
	dir := filepath.Join(mnt, "spool")
	o := Options{CursorSyncInterval: time.Hour, SegmentBytes: 4096, TruncateSegments: 1, Logger: quiet()}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := s.Cursor("a", CursorOptions{FromOldest: true})
	appendN(t, s, 0, 300)
	readAll(t, c, 300)
	c.Ack(10)
	if err := s.Flush(); err != nil { // whole file: slot 0
		t.Fatal(err)
	}
	c.Ack(20)
	if err := s.Flush(); err != nil { // in place: slot 1; next: slot 0
		t.Fatal(err)
	}
	p := filepath.Join(dir, "cursors", "a.cursor")
	syscall.Sync()
	phys := physBlocks(t, p)
	if len(phys) != 2 {
		t.Fatalf("extents %v", phys)
	}
	// Allocate every hole of the backing file (mkfs and discards punch
	// some), then make the block of slot 0 fail from now on.
	if out, err := exec.Command("fallocate", "-l", "32m", img).CombinedOutput(); err != nil {
		t.Fatalf("fallocate: %v %s", err, out)
	}
	if out, err := exec.Command("fallocate", "-p", "-o", strconv.FormatInt(phys[0]*4096, 10), "-l", "4096", img).CombinedOutput(); err != nil {
		t.Fatalf("punch: %v %s", err, out)
	}
	exec.Command("dd", "if=/dev/zero", "of="+filepath.Join(tmp, "filler"), "bs=64k").Run()

	c.Ack(250)
	err = s.Flush()
	t.Logf("flush with a failing block: %v", err)
	if err == nil {
		t.Fatal("setup: the write to the punched block did not fail")
	}
	if got := persistedOf(s, "a"); got != 20 {
		t.Fatalf("failing spool: persisted %d", got)
	}
	disk, derr := deviceCursorState(t, img, phys)
	if derr != nil || disk.acked != 20 {
		t.Fatalf("setup: the device holds acked %d (%v), want 20", disk.acked, derr)
	}

	// Process crash: the lock goes with the process; nothing more is written.
	s.lock.Close()
	s2, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	ci := s2.Cursors()[0]
	t.Logf("restarted: acked %d persisted %d reset %v", ci.Acked, ci.Persisted, ci.Reset)
	if ci.Persisted > disk.acked {
		s2.Flush() // schedules truncation by persisted
		time.Sleep(300 * time.Millisecond)
		s2.mu.Lock()
		first := s2.segs[0].first
		s2.mu.Unlock()
		t.Fatalf("after a failed fdatasync and a restart, persisted = %d but the device holds acked %d; "+
			"truncated up to %d: a power loss now brings the cursor back at %d with records %d..%d gone",
			ci.Persisted, disk.acked, first, disk.acked, disk.acked+1, first-1)
	}
}
