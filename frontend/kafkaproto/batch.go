package kafkaproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"unsafe"

	"github.com/sluiceio/sluice/agent"
	"github.com/sluiceio/sluice/sink"
)

// batchHeaderSize is the fixed part of a record batch (magic 2) up to and
// including the record count.
const batchHeaderSize = 61

// Attribute bits of a record batch.
const (
	attrCodec         = 0x07
	attrLogAppendTime = 0x08
	attrTransactional = 0x10
	attrControl       = 0x20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Batch errors; produce maps each to a Kafka error code.
var (
	errCorrupt      = errors.New("corrupt record batch")
	errOldFormat    = errors.New("record batch magic below 2")
	errTransactions = errors.New("transactional or control batch")
)

// batch is a validated record batch (magic 2).
type batch struct {
	producerID    int64
	producerEpoch int16
	firstSeq      int32
	codec         int
	records       []record
	// cost is the memory the decoded batch holds beside the request
	// frame: decompressed bytes, records and headers (recordCost,
	// headerCost), and the agent.Messages made of the records.
	cost int64
	// values is the bytes of its records' keys and values.
	values int64
}

// What a decoded record and header cost in memory beside their bytes: the
// record, the agent.Message made of it, each header.
var (
	recordCost = int64(unsafe.Sizeof(record{}) + unsafe.Sizeof(agent.Message{}))
	headerCost = int64(unsafe.Sizeof(sink.Header{}))
)

// record is one decoded record; its slices alias the (decompressed) batch.
type record struct {
	timestamp int64 // unix milliseconds
	key       []byte
	value     []byte
	headers   []sink.Header
}

// decodeBatch validates one record batch (exactly one: Produce v3+ sends
// one per partition): sizes, magic, CRC32C, attributes, codec, offset
// deltas; then decompresses (at most dec.max bytes) and decodes its
// records, the batch costing at most 2*dec.max in all (errTooBig).
func decodeBatch(raw []byte, dec *decompressor) (batch, error) {
	var b batch
	if len(raw) < 17 {
		return b, fmt.Errorf("%w: %d bytes", errCorrupt, len(raw))
	}
	length := int32(binary.BigEndian.Uint32(raw[8:]))
	if magic := int8(raw[16]); magic != 2 {
		if magic < 2 && magic >= 0 {
			return b, errOldFormat
		}
		return b, fmt.Errorf("%w: magic %d", errCorrupt, magic)
	}
	if len(raw) < batchHeaderSize || int64(length) != int64(len(raw))-12 {
		return b, fmt.Errorf("%w: length %d for %d bytes (one batch per partition)", errCorrupt, length, len(raw))
	}
	if crc := binary.BigEndian.Uint32(raw[17:]); crc != crc32.Checksum(raw[21:], castagnoli) {
		return b, fmt.Errorf("%w: CRC32C mismatch", errCorrupt)
	}
	attrs := binary.BigEndian.Uint16(raw[21:])
	lastOffsetDelta := int32(binary.BigEndian.Uint32(raw[23:]))
	firstTS := int64(binary.BigEndian.Uint64(raw[27:]))
	b.producerID = int64(binary.BigEndian.Uint64(raw[43:]))
	b.producerEpoch = int16(binary.BigEndian.Uint16(raw[51:]))
	b.firstSeq = int32(binary.BigEndian.Uint32(raw[53:]))
	n := int32(binary.BigEndian.Uint32(raw[57:]))
	if attrs&(attrTransactional|attrControl) != 0 {
		return b, errTransactions
	}
	codec := int(attrs & attrCodec)
	b.codec = codec
	if codec > codecZstd {
		return b, fmt.Errorf("%w: compression codec %d", errCorrupt, codec)
	}
	body := raw[batchHeaderSize:]
	// A record takes at least 7 bytes (uncompressed): bound the count
	// before trusting it for an allocation.
	if n <= 0 || lastOffsetDelta != n-1 || (codec == codecNone && int64(n)*7 > int64(len(body))) {
		return b, fmt.Errorf("%w: %d records, last offset delta %d", errCorrupt, n, lastOffsetDelta)
	}
	if codec == codecNone && len(body) > dec.max {
		return b, fmt.Errorf("%w: %d bytes", errTooBig, len(body))
	}
	body, err := dec.decompress(codec, body)
	if errors.Is(err, errTooBig) {
		return b, err
	} else if err != nil {
		return b, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	if int64(n)*7 > int64(len(body)) {
		return b, fmt.Errorf("%w: %d records in %d bytes", errCorrupt, n, len(body))
	}
	limit := 2 * int64(dec.max)
	if codec != codecNone {
		b.cost = int64(len(body))
	}
	if b.cost += int64(n) * recordCost; b.cost > limit {
		return b, fmt.Errorf("%w: %d records", errTooBig, n)
	}
	b.records = make([]record, n)
	for i := range b.records {
		r := &b.records[i]
		var delta int64
		if body, delta, err = decodeRecord(body, int32(i), r, (limit-b.cost)/headerCost); errors.Is(err, errTooBig) {
			return b, fmt.Errorf("%w: headers of record %d", err, i)
		} else if err != nil {
			return b, fmt.Errorf("%w: record %d: %v", errCorrupt, i, err)
		}
		r.timestamp = firstTS + delta
		if firstTS < 0 || attrs&attrLogAppendTime != 0 {
			r.timestamp = -1 // no timestamp: the push time is used
		}
		b.cost += int64(len(r.headers)) * headerCost
		b.values += int64(len(r.key) + len(r.value))
	}
	if len(body) != 0 {
		return b, fmt.Errorf("%w: %d bytes after the last record", errCorrupt, len(body))
	}
	return b, nil
}

// decodeRecord decodes the record at the start of b (varint length, then
// attributes, timestamp delta, offset delta, key, value, headers) and
// returns the rest of b. More than maxHeaders headers: errTooBig.
func decodeRecord(b []byte, offsetDelta int32, r *record, maxHeaders int64) ([]byte, int64, error) {
	l, n := binary.Varint(b)
	if n <= 0 || l < 0 || l > int64(len(b)-n) {
		return nil, 0, errors.New("bad record length")
	}
	rest := b[n+int(l):]
	d := varReader{b: b[n : n+int(l)]}
	d.byte() // attributes, unused
	tsDelta := d.varint()
	if od := d.varint(); od != int64(offsetDelta) {
		return nil, 0, fmt.Errorf("offset delta %d, want %d", od, offsetDelta)
	}
	r.key = d.bytes()
	r.value = d.bytes()
	nh := d.varint()
	if nh < 0 || nh > int64(len(d.b)/2) { // a header takes at least 2 bytes
		return nil, 0, fmt.Errorf("bad header count %d", nh)
	}
	if nh > maxHeaders {
		return nil, 0, fmt.Errorf("%w: %d headers", errTooBig, nh)
	}
	if nh > 0 {
		r.headers = make([]sink.Header, nh)
		for i := range r.headers {
			k := d.bytes()
			if k == nil {
				d.bad = true
			}
			r.headers[i] = sink.Header{Key: string(k), Value: d.bytes()}
		}
	}
	if d.bad || len(d.b) != 0 {
		return nil, 0, errors.New("malformed record")
	}
	return rest, tsDelta, nil
}

// varReader reads the varint-encoded fields of a record.
type varReader struct {
	b   []byte
	bad bool
}

func (d *varReader) byte() byte {
	if len(d.b) == 0 {
		d.bad = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *varReader) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad = true
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes reads varint-length-prefixed bytes; length -1 is nil.
func (d *varReader) bytes() []byte {
	l := d.varint()
	switch {
	case d.bad:
		return nil
	case l == -1:
		return nil
	case l < -1 || l > int64(len(d.b)):
		d.bad = true
		d.b = nil
		return nil
	}
	v := d.b[:l:l]
	d.b = d.b[l:]
	return v
}
