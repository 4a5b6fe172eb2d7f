package spool

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

func persistedOf(s *Spool, name string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cursors[name].persisted
}

func inPlaceFile(s *Spool, c *Cursor) *os.File {
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	return c.pf
}

// setup: cursor "a" from oldest, 10 records, acks 1 and 2 persisted (whole
// file, then one in-place write): c.pf is open.
func slotsSetup(t *testing.T, o Options) (string, *Spool, *Cursor) {
	dir, s, c := readCursor(t, o)
	for i := uint64(1); i <= 2; i++ {
		c.Ack(i)
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if inPlaceFile(s, c) == nil {
		t.Fatal("no in-place file after two persists")
	}
	return dir, s, c
}

// readCursor opens a spool (cursors persisted only by Flush) with cursor
// "a" from the oldest record, which has read all 10 records appended.
func readCursor(t *testing.T, o Options) (string, *Spool, *Cursor) {
	t.Helper()
	dir := t.TempDir()
	o.CursorSyncInterval = time.Hour
	s := openT(t, dir, o)
	c, _ := s.Cursor("a", CursorOptions{FromOldest: true})
	appendN(t, s, 0, 10)
	readAll(t, c, 10)
	return dir, s, c
}

// WriteAt fails (file closed underneath): persisted stays, the next
// persist writes a whole file, the state read back is right.
func TestCursorInPlaceWriteFailureRewritesAWholeFile(t *testing.T) {
	dir, s, c := slotsSetup(t, Options{})
	p := filepath.Join(dir, "cursors", "a.cursor")
	ino := inode(t, p)
	s.persistMu.Lock()
	c.pf.Close()
	s.persistMu.Unlock()
	c.Ack(3)
	if err := s.Flush(); err == nil {
		t.Fatal("flush with a closed file succeeded")
	}
	if got := persistedOf(s, "a"); got != 2 {
		t.Fatalf("persisted %d after a failed write, want 2", got)
	}
	if st, err := decodeFile(t, p); err != nil || st.acked != 2 {
		t.Fatalf("file %+v %v", st, err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if inode(t, p) == ino {
		t.Fatal("retry after a failure wrote in place into the old file")
	}
	if st, err := decodeFile(t, p); err != nil || st.acked != 3 || persistedOf(s, "a") != 3 {
		t.Fatalf("after retry: %+v %v persisted %d", st, err, persistedOf(s, "a"))
	}
}

// WriteAt succeeds, fdatasync fails (EINVAL on /dev/null): persisted stays.
func TestCursorFdatasyncFailureKeepsPersisted(t *testing.T) {
	dir, s, c := slotsSetup(t, Options{})
	p := filepath.Join(dir, "cursors", "a.cursor")
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.persistMu.Lock()
	c.pf.Close()
	c.pf = null
	s.persistMu.Unlock()
	c.Ack(3)
	if err := s.Flush(); err == nil {
		t.Fatal("flush with failing fdatasync succeeded")
	}
	if got := persistedOf(s, "a"); got != 2 {
		t.Fatalf("persisted %d after failed fdatasync", got)
	}
	if inPlaceFile(s, c) != nil {
		t.Fatal("in-place file kept after a failure")
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if st, err := decodeFile(t, p); err != nil || st.acked != 3 {
		t.Fatalf("after retry %+v %v", st, err)
	}
	s.Close()
	s = openT(t, dir, Options{})
	if ci := s.Cursors(); ci[0].Acked != 3 || ci[0].Reset {
		t.Fatalf("reopen %+v", ci)
	}
}

// The directory fsync of the whole-file path fails (EMFILE on opening the
// directory): the whole file is not counted as durable.
func TestCursorDirFsyncFailureIsNotDurable(t *testing.T) {
	_, s, c := readCursor(t, Options{})
	c.Ack(4)
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	// Find the lowest free fd: fds up to it are used; allow exactly one more
	// (tmp file, then the in-place file; the directory open fails).
	f, _ := os.Open(os.DevNull)
	low := f.Fd()
	f.Close()
	lim := syscall.Rlimit{Cur: uint64(low) + 1, Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	err := s.Flush()
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	if err == nil {
		t.Skip("could not make the directory fsync fail")
	}
	t.Logf("flush: %v", err)
	if got := persistedOf(s, "a"); got != 0 {
		t.Fatalf("persisted %d though the directory fsync failed", got)
	}
	if inPlaceFile(s, c) != nil {
		t.Fatal("in-place file kept after failed dir fsync")
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if persistedOf(s, "a") != 4 {
		t.Fatal("retry did not persist")
	}
}

// Generations across many reopen/persist cycles: the file always decodes
// to the last persisted state, and the newest slot's gen is the largest.
func TestCursorGenerationsRiseAcrossReopens(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cursors", "a.cursor")
	var s *Spool
	s = openT(t, dir, Options{CursorSyncInterval: time.Hour})
	appendN(t, s, 0, 200)
	c, _ := s.Cursor("a", CursorOptions{FromOldest: true})
	c.Release()
	s.Close()
	acked := uint64(0)
	lastGen := uint64(0)
	for round := 0; round < 12; round++ {
		s = openT(t, dir, Options{CursorSyncInterval: time.Hour})
		c, _ = s.Cursor("a", CursorOptions{})
		if c.Acked() != acked {
			t.Fatalf("round %d: reopened at %d, want %d", round, c.Acked(), acked)
		}
		readAll(t, c, int(200-acked))
		for k := 0; k < round%4; k++ { // 0..3 persists this round
			acked++
			c.Ack(acked)
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			st, err := decodeFile(t, p)
			if err != nil || st.acked != acked || st.gen <= lastGen {
				t.Fatalf("round %d: %+v %v lastGen %d", round, st, err, lastGen)
			}
			lastGen = st.gen
		}
		c.Release()
		s.Close()
	}
}

// Remove + recreate under the same name while persists run: a persist of
// the removed cursor must never land in the new cursor's file.
func TestCursorRecreatedUnderTheSameNameWhilePersisting(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{CursorSyncInterval: time.Millisecond})
	appendN(t, s, 0, 50)
	p := filepath.Join(dir, "cursors", "x.cursor")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				s.Flush()
			}
		}
	}()
	for i := 0; i < 60; i++ {
		old, err := s.Cursor("x", CursorOptions{FromOldest: true})
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, old, 50)
		old.Ack(50)
		old.Release()
		if i%3 == 0 {
			s.Flush()
		}
		if err := s.RemoveCursor("x"); err != nil {
			t.Fatal(err)
		}
		old.Ack(50) // stale user acks after removal: must not write
		nc, err := s.Cursor("x", CursorOptions{FromOldest: true})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i%3) * time.Millisecond)
		st, err := decodeFile(t, p)
		if err != nil || st.acked != 0 {
			t.Fatalf("round %d: re-created cursor's file holds %+v %v", i, st, err)
		}
		nc.Release()
		if err := s.RemoveCursor("x"); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if _, err := os.Stat(p); err == nil {
		t.Fatal("removed cursor file present")
	}
}

// Crafted files: equal generations, a stale slot with a higher generation
// (decode follows the generation: documented), n out of range, truncated
// 8 KiB file, old formats of every length never 8192.
func TestCursorDecodeCraftedFiles(t *testing.T) {
	a := cursorState{acked: 5, born: 1}
	b := cursorState{acked: 9, born: 1}
	img := make([]byte, cursorFileSize)
	copy(img, encodeSlot(3, a))
	copy(img[cursorSlot:], encodeSlot(3, b))
	if st, err := decodeCursor(img); err != nil || st.acked != 5 || st.durable != 5 {
		t.Fatalf("equal generations: %+v %v, want slot 0's acked 5", st, err)
	}
	// n huge: no panic
	bad := slices8k()
	binary.LittleEndian.PutUint32(bad[36:], 0xffffffff)
	if _, err := decodeCursor(bad); err == nil {
		t.Fatal("n huge accepted")
	}
	binary.LittleEndian.PutUint32(bad[36:], 253)
	decodeCursor(bad)
	binary.LittleEndian.PutUint32(bad[36:], 254)
	decodeCursor(bad)
	// A short SLC3 file (lost tail) is torn, not read.
	if _, err := decodeCursor(img[:cursorSlot]); err == nil {
		t.Fatal("half an SLC3 file accepted")
	}
	for n := 0; n < 600; n++ {
		if 36+16*n == cursorFileSize || 28+16*n == cursorFileSize {
			t.Fatalf("an old-format file can be %d bytes", cursorFileSize)
		}
	}
	// An older binary's decoder (decodeOld is the previous decodeCursor).
	if _, err := decodeOld(img); err == nil {
		t.Fatal("old decoder accepts SLC3")
	}
}

func slices8k() []byte {
	b := make([]byte, cursorFileSize)
	copy(b, "SLC3")
	return b
}

// Verify reads SLC3 files: newest valid slot, one torn slot is not torn.
func TestVerifyReadsSLC3Cursors(t *testing.T) {
	dir, s, c := slotsSetup(t, Options{})
	c.Ack(3)
	s.Flush()
	r, err := Verify(dir)
	if err != nil || len(r.Cursors) != 1 || r.Cursors[0].Acked != 3 || r.Cursors[0].Error != "" {
		t.Fatalf("verify %+v %v", r.Cursors, err)
	}
}

// The truncation floor never passes a failed persist.
func TestTruncationFloorStaysBelowAFailedPersist(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{CursorSyncInterval: time.Hour, SegmentBytes: 1024, TruncateSegments: 1})
	c, _ := s.Cursor("a", CursorOptions{FromOldest: true})
	appendN(t, s, 0, 200)
	readAll(t, c, 200)
	c.Ack(1)
	s.Flush()
	c.Ack(2)
	s.Flush()
	s.persistMu.Lock()
	c.pf.Close()
	s.persistMu.Unlock()
	c.Ack(190)
	if err := s.Flush(); err == nil {
		t.Fatal("expected failure")
	}
	time.Sleep(100 * time.Millisecond)
	s.mu.Lock()
	first := s.segs[0].first
	s.mu.Unlock()
	if first > 3 {
		t.Fatalf("truncated to %d though only 2 is persisted", first)
	}
}
