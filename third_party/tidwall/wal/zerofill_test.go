package wal

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// sluice: ZeroFill keeps the tail zero-filled past its entries while it is
// written, and every file holds exactly its entries once its segment is
// closed or cycled; the log reads back the same.
func TestZeroFill(t *testing.T) {
	dir := t.TempDir()
	opts := &Options{SegmentSize: 8192, ZeroFill: 4096, NoSync: true}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	entry := func(i int) []byte { return []byte(fmt.Sprintf("entry-%04d-%s", i, bytes.Repeat([]byte{'z'}, i%100))) }
	sizes := func() (tail int64, sealed []string) {
		ents, _ := os.ReadDir(dir)
		for i, e := range ents {
			fi, _ := e.Info()
			b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			if i == len(ents)-1 {
				tail = fi.Size()
				continue
			}
			if len(b) > 0 && b[len(b)-1] == 0 {
				sealed = append(sealed, e.Name())
			}
		}
		return tail, sealed
	}
	const n = 400
	for i := 1; i <= n; i++ {
		if err := l.Write(uint64(i), entry(i)); err != nil {
			t.Fatal(err)
		}
		tail, zeroEnded := sizes()
		if len(zeroEnded) > 0 {
			t.Fatalf("after entry %d: sealed segments end with zeros: %v", i, zeroEnded)
		}
		// (A tail just cycled to holds nothing yet: nothing to fill past.)
		if s := l.segments[len(l.segments)-1]; len(s.ebuf) > 0 && tail <= int64(len(s.ebuf)) {
			t.Fatalf("after entry %d: tail is %d bytes on disk, entries %d: not zero-filled", i, tail, len(s.ebuf))
		}
	}
	if len(l.segments) < 3 {
		t.Fatalf("%d segments: the test wants cycles", len(l.segments))
	}
	s := l.segments[len(l.segments)-1]
	want := int64(len(s.ebuf))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(s.path); fi.Size() != want {
		t.Fatalf("closed tail is %d bytes, entries %d", fi.Size(), want)
	}
	l, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 1; i <= n; i++ {
		b, err := l.Read(uint64(i))
		if err != nil || !bytes.Equal(b, entry(i)) {
			t.Fatalf("entry %d: %q %v", i, b, err)
		}
	}
	if last, _ := l.LastIndex(); last != n {
		t.Fatalf("last index %d, want %d", last, n)
	}
}
