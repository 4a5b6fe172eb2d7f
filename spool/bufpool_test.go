package spool

import (
	"bytes"
	"context"
	"testing"
	"time"
)

func TestGetBufHasRoomAndPutBufKeepsTheClassPromise(t *testing.T) {
	for _, n := range []int{0, 1, 4095, 4096, 4097, 100 << 10, 1 << 20, 16 << 20, 16<<20 + 1, 40 << 20} {
		b := getBuf(n)
		if len(b) != 0 || cap(b) < n {
			t.Fatalf("getBuf(%d): len %d cap %d", n, len(b), cap(b))
		}
		putBuf(append(b, 'x'))
		// Whatever the pools hand out now still has room for n.
		if b := getBuf(n); len(b) != 0 || cap(b) < n {
			t.Fatalf("getBuf(%d) after putBuf: len %d cap %d", n, len(b), cap(b))
		}
	}
	// A buffer that grew past its class goes to the class its capacity
	// covers, never a larger one.
	putBuf(make([]byte, 0, 6000))
	for range 100 {
		if b := getBuf(8192); cap(b) < 8192 {
			t.Fatalf("getBuf(8192) returned cap %d", cap(b))
		}
	}
}

func TestRecycledBatchBuffersDoNotChangeWhatWasWritten(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentBytes: 64 << 10})
	const n = 300
	for i := range n {
		// Batches of 1 to 3 records of different sizes, so that buffers of
		// several classes go round.
		b := NewBatch(3, 3*(len(payload(i))+6000))
		for j := range i%3 + 1 {
			b.Add(append(payload(i), bytes.Repeat([]byte{byte('a' + j)}, (i*j)%6000)...))
		}
		if _, err := s.AppendBatch(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	c, err := s.Cursor("check", CursorOptions{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	c.ReuseBuffer()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got int
	for i := range n {
		for j := range i%3 + 1 {
			recs, err := c.Read(ctx, 1, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			want := append(payload(i), bytes.Repeat([]byte{byte('a' + j)}, (i*j)%6000)...)
			if len(recs) != 1 || !bytes.Equal(recs[0].Data, want) {
				t.Fatalf("record %d.%d: got %d records, first %.40q; want %.40q", i, j, len(recs), recs[0].Data, want)
			}
			got++
		}
	}
	if got == 0 {
		t.Fatal("read nothing")
	}
}

func TestReuseBufferReadsIntoOneBuffer(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	appendN(t, s, 0, 20)
	c, err := s.Cursor("reuse", CursorOptions{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	c.ReuseBuffer()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, err := c.Read(ctx, 5, 1<<20)
	if err != nil || len(first) != 5 {
		t.Fatalf("%d records, %v", len(first), err)
	}
	if !bytes.Equal(first[0].Data, payload(0)) {
		t.Fatalf("first record %q, want %q", first[0].Data, payload(0))
	}
	second, err := c.Read(ctx, 5, 1<<20)
	if err != nil || len(second) != 5 || !bytes.Equal(second[0].Data, payload(5)) {
		t.Fatalf("%d records, %v, first %q", len(second), err, second[0].Data)
	}
	// The second Read reused the first one's buffer: its records now
	// alias the same memory.
	if &first[0].Data[0] != &second[0].Data[0] {
		t.Error("the second Read did not reuse the first one's buffer")
	}
}
