package spool

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A machine crash cut the spool's unsynced tail
// below a cursor's born (the cursor file, synced at creation, survived).
// loadCursors moves acked back to the tail ("beyond the tail"), and born
// with it: the sequences reused after the cut (a later epoch, appended
// after the cursor existed) must not be at or below born, or
// agent.statusOf would read them dropped for a sink that received them.
func TestBornBeyondCutTail(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	appendN(t, s, 0, 10)
	c, _ := s.Cursor("late", CursorOptions{}) // born 10
	if c.Born() != 10 {
		t.Fatalf("born %d", c.Born())
	}
	s.Close()
	cutLastThree(t, dir) // records 8..10 were not synced
	s = openT(t, dir, Options{})
	c, _ = s.Cursor("late", CursorOptions{})
	again := appendN(t, s, 100, 3) // seq 8..10 again, a later epoch, after the cursor
	if r := readAll(t, c, 3); r[0].ID != again[0] {
		t.Fatalf("read %+v, want %+v", r[0].ID, again[0])
	}
	if c.Born() >= again[0].Seq {
		t.Fatalf("born %d after the tail was cut to %d: record %+v, appended after the cursor existed, reads as older than it",
			c.Born(), again[0].Seq-1, again[0])
	}
}

// decodeCursor never panics and never misreads: any
// strict prefix, any appended byte, any single flipped bit of a valid
// SLC1 or SLC2 file is reported torn; random input never panics.
func TestDecodeCursorTornNeverMisread(t *testing.T) {
	mk := func(magic string, born bool, n int) []byte {
		b := []byte(magic)
		b = binary.LittleEndian.AppendUint64(b, 1000)
		b = binary.LittleEndian.AppendUint64(b, 7)
		if born {
			b = binary.LittleEndian.AppendUint64(b, 500)
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(n))
		for i := range n {
			b = binary.LittleEndian.AppendUint64(b, uint64(10*i))
			b = binary.LittleEndian.AppendUint64(b, uint64(10*i+5))
		}
		return binary.LittleEndian.AppendUint32(b, crc(b))
	}
	for _, tc := range []struct {
		magic string
		born  bool
	}{{"SLC1", false}, {"SLC2", true}} {
		for n := range 17 {
			good := mk(tc.magic, tc.born, n)
			st, err := decodeCursor(good)
			if err != nil || st.acked != 1000 || st.droppedTotal != 7 || len(st.dropped) != n || (tc.born && st.born != 500) || (!tc.born && st.born != 0) {
				t.Fatalf("%s n=%d: %+v %v", tc.magic, n, st, err)
			}
			for l := range len(good) {
				if _, err := decodeCursor(good[:l]); err == nil {
					t.Fatalf("%s n=%d: prefix of %d bytes accepted", tc.magic, n, l)
				}
			}
			for _, extra := range [][]byte{{0}, {0, 0, 0, 0}, bytes.Repeat([]byte{0xff}, 16)} {
				if _, err := decodeCursor(append(bytes.Clone(good), extra...)); err == nil {
					t.Fatalf("%s n=%d: trailing %d bytes accepted", tc.magic, n, len(extra))
				}
			}
			for i := range len(good) * 8 {
				x := bytes.Clone(good)
				x[i/8] ^= 1 << (i % 8)
				if _, err := decodeCursor(x); err == nil {
					t.Fatalf("%s n=%d: bit %d flipped accepted", tc.magic, n, i)
				}
			}
		}
	}
	// A SLC2 body re-labelled SLC1 with a valid CRC (and the reverse): the
	// lengths disagree, so it is torn, never read with shifted fields.
	for _, n := range []int{0, 1, 2, 16} {
		g := mk("SLC2", true, n)
		body := append([]byte("SLC1"), g[4:len(g)-4]...)
		if st, err := decodeCursor(binary.LittleEndian.AppendUint32(body, crc(body))); err == nil {
			t.Fatalf("SLC2 body as SLC1 n=%d accepted: %+v", n, st)
		}
		g = mk("SLC1", false, n)
		body = append([]byte("SLC2"), g[4:len(g)-4]...)
		if st, err := decodeCursor(binary.LittleEndian.AppendUint32(body, crc(body))); err == nil {
			t.Fatalf("SLC1 body as SLC2 n=%d accepted: %+v", n, st)
		}
	}
	// Random input with a valid CRC and a right magic: never a panic.
	rng := rand.New(rand.NewSource(1))
	for range 200000 {
		l := rng.Intn(80)
		b := make([]byte, l)
		rng.Read(b)
		if l >= 4 {
			copy(b, []string{"SLC1", "SLC2"}[rng.Intn(2)])
		}
		if l >= 8 {
			binary.LittleEndian.PutUint32(b[l-4:], crc(b[:l-4]))
		}
		decodeCursor(b)
	}
}

// FuzzDecodeCursor: whatever the bytes (a CRC made to match), decodeCursor
// does not panic, and what it accepts encodes back to the same state (and
// an SLC2 file to the same bytes). An input of a whole SLC3 file's size
// gets a CRC made to match in slot 0.
func FuzzDecodeCursor(f *testing.F) {
	st := cursorState{acked: 5, born: 3, droppedTotal: 2, dropped: []Range{{1, 2}}}
	f.Add(encodeSLC2(st))
	f.Add(cursorImage(7, st))
	f.Add([]byte("SLC1"))
	f.Fuzz(func(t *testing.T, in []byte) {
		b := bytes.Clone(in) // the input is not ours to change
		switch {
		case len(b) == cursorFileSize:
			if n := int(binary.LittleEndian.Uint32(b[36:])); n <= (cursorSlot-44)/16 {
				end := 40 + 16*n
				binary.LittleEndian.PutUint32(b[end:], crc(b[:end]))
			}
		case len(b) >= 8:
			b = binary.LittleEndian.AppendUint32(b[:len(b)-4], crc(b[:len(b)-4]))
		}
		st, err := decodeCursor(b)
		if err != nil {
			return
		}
		st2, err := decodeCursor(cursorImage(st.gen+1, st))
		if err != nil || st2.acked != st.acked || st2.born != st.born || st2.droppedTotal != st.droppedTotal ||
			!slices.Equal(st2.dropped, st.dropped) || st2.gen != st.gen+1 {
			t.Fatalf("round trip: %+v -> %+v %v", st, st2, err)
		}
		if string(b[:4]) == "SLC2" && !bytes.Equal(encodeSLC2(st), b) {
			t.Fatalf("SLC2 re-encodes differently")
		}
	})
}

// encodeSLC2 is the cursor file of the previous version.
func encodeSLC2(st cursorState) []byte {
	b := []byte("SLC2")
	for _, v := range []uint64{st.acked, st.droppedTotal, st.born} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(st.dropped)))
	for _, r := range st.dropped {
		b = binary.LittleEndian.AppendUint64(b, r.From)
		b = binary.LittleEndian.AppendUint64(b, r.To)
	}
	return binary.LittleEndian.AppendUint32(b, crc(b))
}

// A cursor file torn or lost: the cursor restarts at
// the oldest record with born 0 (unknown), reported; it re-reads the
// records it was born after (re-delivery, never a skip), so they are not
// "dropped" for it. A removed-then-recreated cursor is born again.
func TestBornAfterResetAndRecreate(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	appendN(t, s, 0, 10)
	c, _ := s.Cursor("late", CursorOptions{})
	c.Release()
	s.Close()
	if err := os.WriteFile(filepath.Join(dir, "cursors", "late.cursor"), []byte("SLC2torn"), 0o640); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{})
	c, _ = s.Cursor("late", CursorOptions{})
	if c.Born() != 0 || c.Acked() != 0 {
		t.Fatalf("torn: born %d acked %d", c.Born(), c.Acked())
	}
	if r := readAll(t, c, 10); r[0].ID.Seq != 1 {
		t.Fatalf("torn: first read %d", r[0].ID.Seq)
	}
	c.Release()
	if err := s.RemoveCursor("late"); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 10, 2)
	c, _ = s.Cursor("late", CursorOptions{})
	if c.Born() != 12 {
		t.Fatalf("recreated: born %d", c.Born())
	}
	s.Close()
	s = openT(t, dir, Options{})
	c, _ = s.Cursor("late", CursorOptions{})
	if c.Born() != 12 || c.Acked() != 12 {
		t.Fatalf("recreated, reopened: born %d acked %d", c.Born(), c.Acked())
	}
}
