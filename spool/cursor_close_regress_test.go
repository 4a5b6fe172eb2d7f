package spool

import (
	"errors"
	"testing"
	"time"
)

// A Flush after Close (an Ack that arrived after Close, then Flush) wrote
// the cursor file after the directory lock was released, and opened the
// in-place file again, which nothing closed any more.
func TestFlushAfterCloseWritesNoCursorFile(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{CursorSyncInterval: time.Hour})
	c, _ := s.Cursor("a", CursorOptions{FromOldest: true})
	appendN(t, s, 0, 5)
	readAll(t, c, 5)
	c.Ack(2)
	s.Close()
	if err := c.Ack(3); err != nil {
		t.Logf("ack after close: %v", err)
	}
	if err := s.Flush(); !errors.Is(err, ErrClosed) {
		t.Errorf("flush after close: %v, want ErrClosed", err)
	}
	if f := inPlaceFile(s, c); f != nil {
		f.Close()
		t.Fatal("Flush after Close wrote the cursor file and left its in-place file open")
	}
}
