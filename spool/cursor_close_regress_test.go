package spool

import (
	"errors"
	"testing"
)

// A Flush after Close (an Ack that arrived after Close, then Flush) wrote
// the cursor file after the directory lock was released, and opened the
// in-place file again, which nothing closed any more.
func TestFlushAfterCloseWritesNoCursorFile(t *testing.T) {
	_, s, c := readCursor(t, Options{})
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
