package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/spool"
)

// Msg is a message as stored in the spool: the payload of one spool record.
// Decoded messages alias the record's bytes.
type Msg struct {
	Time      int64 // push time, unix nanoseconds
	Partition int32 // explicit partition or sink.NoPartition
	Topic     string
	Key       []byte // nil = no key
	ID        string // kept sluice-id of a chained message; "" = the spool id
	Sinks     []string
	Headers   []sink.Header
	Value     []byte

	// Optional fields, stored after the value as tag + bytes.
	Callback string // Sluice-Callback URL
	IdemKey  string // Idempotency-Key of the request (first message only)
	IdemHash []byte // hash of the request the key was first used with
	Meta     []byte // a front-end's own bytes (Message.Meta), never forwarded
}

// Tags of the optional fields.
const (
	tagCallback = 1
	tagIdemKey  = 2
	tagIdemHash = 3
	tagMeta     = 16 // front-ends' bytes; numbered apart from the core's tags
)

// Record versions: recordPlain has no optional fields; recordExtended has
// some after the value. Readers that only want optional fields (callbacks,
// the idempotency index) skip plain records without decoding them.
const (
	recordPlain    = 1
	recordExtended = 2
)

var errBadRecord = errors.New("agent: undecodable record")

// appendMsg encodes m after dst. Layout: version, push time (8), partition
// (4), then uvarint-length-prefixed topic, key (length+1, 0 = nil), id,
// sink count + names, header count + name/value pairs, and the value.
func appendMsg(dst []byte, m *Msg) []byte {
	if m.Callback != "" || m.IdemKey != "" || m.Meta != nil {
		dst = append(dst, recordExtended)
	} else {
		dst = append(dst, recordPlain)
	}
	dst = binary.LittleEndian.AppendUint64(dst, uint64(m.Time))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(m.Partition))
	dst = appendBytes(dst, []byte(m.Topic))
	if m.Key == nil {
		dst = binary.AppendUvarint(dst, 0)
	} else {
		dst = binary.AppendUvarint(dst, uint64(len(m.Key))+1)
		dst = append(dst, m.Key...)
	}
	dst = appendBytes(dst, []byte(m.ID))
	dst = binary.AppendUvarint(dst, uint64(len(m.Sinks)))
	for _, s := range m.Sinks {
		dst = appendBytes(dst, []byte(s))
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Headers)))
	for _, h := range m.Headers {
		dst = appendBytes(dst, []byte(h.Key))
		dst = appendBytes(dst, h.Value)
	}
	dst = appendBytes(dst, m.Value)
	if m.Callback != "" {
		dst = appendBytes(append(dst, tagCallback), []byte(m.Callback))
	}
	if m.IdemKey != "" {
		dst = appendBytes(append(dst, tagIdemKey), []byte(m.IdemKey))
		dst = appendBytes(append(dst, tagIdemHash), m.IdemHash)
	}
	if m.Meta != nil {
		dst = appendBytes(append(dst, tagMeta), m.Meta)
	}
	return dst
}

// encodedSize is an upper bound of appendMsg's output for m.
func encodedSize(m *Msg) int {
	n := 1 + 8 + 4 + 10*5 + len(m.Topic) + len(m.Key) + len(m.ID) + len(m.Value) +
		44 + len(m.Callback) + len(m.IdemKey) + len(m.IdemHash) + len(m.Meta)
	for _, s := range m.Sinks {
		n += 10 + len(s)
	}
	for _, h := range m.Headers {
		n += 20 + len(h.Key) + len(h.Value)
	}
	return n
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

type decoder struct {
	b      []byte
	err    bool
	intern *interner
}

// interner returns one string per distinct topic or sink name, so that
// decoding a record does not allocate them again and again. Not safe for
// concurrent use: one per goroutine.
type interner map[string]string

func (in interner) get(b []byte) string {
	if s, ok := in[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	if len(in) < 4096 {
		in[s] = s
	}
	return s
}

func (d *decoder) str() string {
	b := d.bytes()
	if d.intern != nil {
		return d.intern.get(b)
	}
	return string(b)
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err || n > uint64(len(d.b)) {
		d.err = true
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// decodeMsg decodes a record into m; m's slices alias b.
func decodeMsg(b []byte, m *Msg) error { return decodeMsgInterned(b, m, nil) }

// decodeMsgInterned is decodeMsg with topic and sink names from in; it
// reuses m.Sinks.
func decodeMsgInterned(b []byte, m *Msg, in *interner) error {
	if len(b) < 13 || (b[0] != recordPlain && b[0] != recordExtended) {
		return errBadRecord
	}
	m.Time = int64(binary.LittleEndian.Uint64(b[1:]))
	m.Partition = int32(binary.LittleEndian.Uint32(b[9:]))
	d := decoder{b: b[13:], intern: in}
	m.Topic = d.str()
	if k := d.uvarint(); k > 0 && !d.err {
		if k-1 > uint64(len(d.b)) {
			return errBadRecord
		}
		m.Key = d.b[: k-1 : k-1]
		d.b = d.b[k-1:]
	} else {
		m.Key = nil
	}
	m.ID = string(d.bytes())
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return errBadRecord
	}
	m.Sinks = m.Sinks[:0]
	for i := uint64(0); i < n && !d.err; i++ {
		m.Sinks = append(m.Sinks, d.str())
	}
	n = d.uvarint()
	if n > uint64(len(d.b)) {
		return errBadRecord
	}
	m.Headers = nil // handed on with the message: never reused
	for i := uint64(0); i < n && !d.err; i++ {
		k := string(d.bytes())
		m.Headers = append(m.Headers, sink.Header{Key: k, Value: d.bytes()})
	}
	m.Value = d.bytes()
	m.Callback, m.IdemKey, m.IdemHash, m.Meta = "", "", nil, nil
	for !d.err && len(d.b) > 0 && b[0] == recordExtended {
		tag := d.b[0]
		d.b = d.b[1:]
		v := d.bytes()
		switch tag {
		case tagCallback:
			m.Callback = string(v)
		case tagIdemKey:
			m.IdemKey = string(v)
		case tagIdemHash:
			m.IdemHash = v
		case tagMeta:
			m.Meta = v
		}
	}
	if d.err || len(d.b) != 0 {
		return errBadRecord
	}
	return nil
}

// hasExtras reports whether a stored record carries optional fields.
func hasExtras(b []byte) bool { return len(b) > 0 && b[0] == recordExtended }

func (m *Msg) targets(name string) bool {
	for _, s := range m.Sinks {
		if s == name {
			return true
		}
	}
	return false
}

// toSink converts a stored message for a sink, with its sluice id.
func (m *Msg) toSink(id string) sink.Message {
	if m.ID != "" {
		id = m.ID
	}
	return sink.Message{
		ID: id, Topic: m.Topic, Key: m.Key, Value: m.Value, Headers: m.Headers,
		Time: time.Unix(0, m.Time), Partition: m.Partition,
	}
}

// DescribeRecord renders a stored record for `sluice spool inspect`.
func DescribeRecord(r spool.Record) string {
	if r.Corrupt {
		return fmt.Sprintf("seq %d epoch %d: CORRUPT (checksum mismatch)", r.ID.Seq, r.ID.Epoch)
	}
	var m Msg
	if err := decodeMsg(r.Data, &m); err != nil {
		return fmt.Sprintf("seq %d epoch %d: undecodable record (%d bytes)", r.ID.Seq, r.ID.Epoch, len(r.Data))
	}
	v := m.Value
	if len(v) > 120 {
		v = v[:120]
	}
	return fmt.Sprintf("seq %d epoch %d %s topic=%s key=%q sinks=%v value=%q",
		r.ID.Seq, r.ID.Epoch, time.Unix(0, m.Time).UTC().Format(time.RFC3339Nano), m.Topic, m.Key, m.Sinks, v)
}
