package spool

import (
	"encoding/binary"
	"testing"
)

func frame(seq uint64, payload []byte) []byte {
	e := make([]byte, headerSize+len(payload))
	putHeader(e, 1, 42, payload)
	copy(e[headerSize:], payload)
	sealHeader(e, seq)
	return append(binary.AppendUvarint(nil, uint64(len(e))), e...)
}

// FuzzScanSegment: the segment parser never panics, never reports a record
// whose checksums do not hold as intact, and keeps sequences contiguous.
func FuzzScanSegment(f *testing.F) {
	good := append(frame(1, []byte("hello")), frame(2, []byte("world"))...)
	f.Add(good, false)
	f.Add(good[:len(good)-3], true)
	f.Add(append(good, 0, 0, 0, 0), true)
	f.Fuzz(func(t *testing.T, data []byte, tail bool) {
		r := scanSegment(data, 1, true, tail)
		if r.validEnd > int64(len(data)) || (r.badAt >= 0 && r.badAt > int64(len(data))) {
			t.Fatalf("offsets beyond the data: %+v", r)
		}
		off := 0
		for seq := uint64(1); off < int(r.validEnd); seq++ {
			e, n, st := nextFrame(data[off:])
			if st != frameOK || e.seq != seq {
				t.Fatalf("kept region does not parse at %d (seq %d): %v", off, seq, st)
			}
			if crc(e.payload) != binary.LittleEndian.Uint32(data[off+n-len(e.payload)-8:]) != e.corrupt {
				t.Fatalf("corrupt flag wrong at seq %d", seq)
			}
			off += n
		}
	})
}
