package spool

import (
	"bytes"
	"testing"
)

// A read stopped by maxRecords returns records that do not hold the read's
// whole buffer (up to maxBytes) alive: a reader that keeps a few small
// records from each read must not keep a buffer per read. The forwarder's
// read-ahead budget counts the records' bytes, and reads few records at a
// time when it is nearly full.
func TestFewRecordsDoNotKeepTheReadBuffer(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	appendN(t, s, 0, 500)
	c, _ := s.Cursor("r", CursorOptions{FromOldest: true})
	for i := 0; i < 500; {
		recs, err := c.Read(t.Context(), 3, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		frames := 0
		for _, r := range recs {
			frames += frameSize(len(r.Data))
		}
		for _, r := range recs {
			if !bytes.Equal(r.Data, payload(i)) {
				t.Fatalf("record %d: %q", i, r.Data)
			}
			// What a record keeps alive past its own bytes is at most
			// what its read returned (the buffer is cut to that, or
			// was less than twice as large).
			if cap(r.Data) > 2*frames {
				t.Fatalf("record %d of a read of %d (%d bytes of frames) keeps %d bytes of buffer", i, len(recs), frames, cap(r.Data))
			}
			i++
		}
	}
}
