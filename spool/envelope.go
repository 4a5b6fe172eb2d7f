package spool

import (
	"encoding/binary"
	"hash/crc32"
)

// Envelope layout, little endian, in front of every payload:
//
//	off len field
//	  0   2 magic "SL"
//	  2   1 format version (1)
//	  3   1 flags (0)
//	  4   4 epoch of the open that appended the record
//	  8   8 sequence (equals the tidwall/wal index)
//	 16   8 append time, unix nanoseconds
//	 24   4 payload length
//	 28   4 CRC32C of the payload
//	 32   4 CRC32C of bytes 0..31
//	 36   … payload
//
// tidwall/wal frames each entry with a uvarint length; the envelope's own
// length and two checksums let the spool tell a torn, zero-filled or shifted
// entry (bad header) from a damaged payload (bad payload CRC).
const (
	headerSize     = 36
	formatVersion  = 1
	magic0, magic1 = 'S', 'L'
)

// RecordOverhead is the most a record takes on disk beyond its payload:
// the envelope header and tidwall/wal's uvarint length (payloads below
// maxEntry). A cap that must hold a payload of n bytes needs n +
// RecordOverhead.
const RecordOverhead = headerSize + 5

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// putHeader writes the fields a caller knows before the owner assigns the
// sequence: everything but seq and the header CRC.
func putHeader(h []byte, epoch uint32, unixNano int64, payload []byte) {
	h[0], h[1], h[2], h[3] = magic0, magic1, formatVersion, 0
	binary.LittleEndian.PutUint32(h[4:], epoch)
	binary.LittleEndian.PutUint64(h[16:], uint64(unixNano))
	binary.LittleEndian.PutUint32(h[24:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[28:], crc(payload))
}

// sealHeader sets the sequence and the header CRC.
func sealHeader(h []byte, seq uint64) {
	binary.LittleEndian.PutUint64(h[8:], seq)
	binary.LittleEndian.PutUint32(h[32:], crc(h[:32]))
}

// entry is one parsed envelope.
type entry struct {
	epoch   uint32
	seq     uint64
	time    int64
	payload []byte
	corrupt bool // header valid, payload CRC mismatch
}

// parseEnvelope checks an entry's header. ok=false means the framing is not
// trustworthy (torn, zero-filled, shifted, wrong version); a payload whose
// CRC fails comes back ok with corrupt set.
func parseEnvelope(b []byte) (e entry, ok bool) {
	if len(b) < headerSize || b[0] != magic0 || b[1] != magic1 || b[2] != formatVersion {
		return e, false
	}
	if crc(b[:32]) != binary.LittleEndian.Uint32(b[32:]) {
		return e, false
	}
	n := binary.LittleEndian.Uint32(b[24:])
	if int(n) != len(b)-headerSize {
		return e, false
	}
	e.epoch = binary.LittleEndian.Uint32(b[4:])
	e.seq = binary.LittleEndian.Uint64(b[8:])
	e.time = int64(binary.LittleEndian.Uint64(b[16:]))
	e.payload = b[headerSize:]
	e.corrupt = crc(e.payload) != binary.LittleEndian.Uint32(b[28:])
	return e, true
}

// frameStatus tells what nextFrame found.
type frameStatus int

const (
	frameOK         frameStatus = iota
	frameIncomplete             // fewer bytes than the frame needs: end of data or torn
	frameBad                    // framing or header invalid
)

// nextFrame parses one tidwall frame (uvarint length + envelope) at the start
// of b and returns the entry and the frame's total size.
func nextFrame(b []byte) (e entry, n int, st frameStatus) {
	if len(b) == 0 {
		return e, 0, frameIncomplete
	}
	size, vn := binary.Uvarint(b)
	if vn == 0 {
		return e, 0, frameIncomplete
	}
	if vn < 0 || size < headerSize || size > maxEntry {
		return e, 0, frameBad
	}
	if uint64(len(b)-vn) < size {
		return e, 0, frameIncomplete
	}
	end := vn + int(size)
	e, ok := parseEnvelope(b[vn:end])
	if !ok {
		return e, 0, frameBad
	}
	return e, end, frameOK
}

// maxEntry bounds a single entry (envelope + payload); a length prefix above
// it is damage, not data.
const maxEntry = 1 << 30

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// frameSize is the on-disk size of an entry with a payload of n bytes.
func frameSize(n int) int {
	return uvarintLen(uint64(headerSize+n)) + headerSize + n
}
