package spool

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// slotOf decodes one slot of a cursor file on disk (err: torn or empty).
func slotOf(t *testing.T, path string, slot int) (cursorState, error) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != cursorFileSize {
		t.Fatalf("%s is %d bytes, want %d", path, len(b), cursorFileSize)
	}
	return decodeSlot(b[slot*cursorSlot : (slot+1)*cursorSlot])
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// Persists after the first of an Open write the file's two slots in turn,
// in place (same inode: no new file, no rename), each with a higher
// generation; the file always holds the last persisted state.
func TestCursorPersistsAlternateSlotsInPlace(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{CursorSyncInterval: time.Hour})
	c, _ := s.Cursor("a", CursorOptions{})
	appendN(t, s, 0, 10)
	readAll(t, c, 10)
	p := filepath.Join(dir, "cursors", "a.cursor")
	var ino uint64
	for i := 1; i <= 6; i++ {
		c.Ack(uint64(i))
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		st, err := decodeFile(t, p)
		if err != nil || st.acked != uint64(i) {
			t.Fatalf("after ack %d: %+v %v", i, st, err)
		}
		switch {
		case i == 1: // the first persist of an Open writes a whole file
			ino = inode(t, p)
		case inode(t, p) != ino:
			t.Fatalf("persist %d replaced the file instead of writing it in place", i)
		}
		if i > 1 {
			// The slot not written this time holds the persist before.
			other, err := slotOf(t, p, i%2)
			if err != nil || other.acked != uint64(i-1) || other.gen+1 != st.gen {
				t.Fatalf("after ack %d the other slot holds %+v %v (newest gen %d)", i, other, err, st.gen)
			}
		}
	}
}

func decodeFile(t *testing.T, path string) (cursorState, error) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return decodeCursor(b)
}

// A crash in the middle of a persist tears the slot being written: the
// cursor comes back at the persist before (re-delivery of what was
// acknowledged since, never a reset to the oldest record). Both slots torn:
// restarted at the oldest record, reported.
func TestTornCursorSlotFallsBackToTheOtherSlot(t *testing.T) {
	for _, both := range []bool{false, true} {
		dir, s, c := slotsSetup(t, Options{}) // acks 1 and 2 persisted
		for i := uint64(3); i <= 4; i++ {
			c.Ack(i)
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		c.Release()
		p := filepath.Join(dir, "cursors", "a.cursor")
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, cursorFileSize)
		if _, err := f.ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		// Acks 1..4 persisted: whole file (slot 0), then slots 1, 0, 1.
		newest, _ := decodeSlot(b[cursorSlot:])
		if newest.acked != 4 {
			t.Fatalf("slot 1 holds %+v, want acked 4", newest)
		}
		s.Close() // nothing left to persist: acks 1..4 are
		// Tear what a crash in the middle of a fifth persist would.
		torn := []byte("garbage written half-way")
		f.WriteAt(torn, cursorSlot+20)
		if both {
			f.WriteAt(torn, 20)
		}
		f.Close()

		s = openT(t, dir, Options{})
		info := s.Cursors()
		switch {
		case both && (!info[0].Reset || info[0].Acked != 0):
			t.Fatalf("both slots torn: %+v", info)
		case !both && (info[0].Reset || info[0].Acked != 3):
			t.Fatalf("newest slot torn: %+v, want acked 3 from the other slot", info)
		}
		s.Close()
	}
}

// A cursor file of the previous version ("SLC2") is read, and its first
// persist rewrites it as "SLC3" with the same state.
func TestSLC2CursorFileIsReadAndRewritten(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{CursorSyncInterval: time.Hour})
	appendN(t, s, 0, 10)
	c, _ := s.Cursor("a", CursorOptions{FromOldest: true})
	c.Release()
	s.Close()
	p := filepath.Join(dir, "cursors", "a.cursor")
	old := cursorState{acked: 6, droppedTotal: 2, born: 0, dropped: []Range{{3, 4}}}
	if err := os.WriteFile(p, encodeSLC2(old), 0o640); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{CursorSyncInterval: time.Hour})
	c, _ = s.Cursor("a", CursorOptions{})
	if c.Acked() != 6 || c.DroppedTotal() != 2 || !c.Dropped(4) || c.Dropped(5) {
		t.Fatalf("SLC2 read as acked %d dropped %d", c.Acked(), c.DroppedTotal())
	}
	readAll(t, c, 4)
	c.Ack(7)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	st, err := decodeFile(t, p)
	if err != nil || st.acked != 7 || st.droppedTotal != 2 || len(st.dropped) != 1 {
		t.Fatalf("rewritten: %+v %v", st, err)
	}
}

// RemoveCursor while a persist of that cursor runs: the file stays
// removed (a persist that took the cursor before the removal wrote it
// back, and the next Open found the removed cursor again, holding its
// records).
func TestRemovedCursorIsNotWrittenBack(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{CursorSyncInterval: time.Hour})
	appendN(t, s, 0, 1)
	p := filepath.Join(dir, "cursors", "x.cursor")
	for i := range 300 {
		c, err := s.Cursor("x", CursorOptions{FromOldest: true})
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, c, 1)
		c.Ack(1)
		c.Release()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); s.Flush() }()
		if err := s.RemoveCursor("x"); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("round %d: the removed cursor's file was written back", i)
		}
	}
}
