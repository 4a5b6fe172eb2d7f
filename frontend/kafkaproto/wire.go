package kafkaproto

import (
	"encoding/binary"
	"errors"
)

var errMalformed = errors.New("malformed request")

// reader reads Kafka's big-endian and compact (flexible) encodings from a
// request; any read past the end marks it bad and every later read yields
// zero values. Nothing it returns is allocated in proportion to a length
// the peer claims: slices alias the request.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) fail() {
	r.bad = true
	r.b = nil
}

func (r *reader) span(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) int16() int16 {
	b := r.span(2)
	if b == nil {
		return 0
	}
	return int16(binary.BigEndian.Uint16(b))
}

func (r *reader) int32() int32 {
	b := r.span(4)
	if b == nil {
		return 0
	}
	return int32(binary.BigEndian.Uint32(b))
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// nullableString reads an int16-length string; -1 is null.
func (r *reader) nullableString() *string {
	n := r.int16()
	if n == -1 || r.bad {
		return nil
	}
	s := string(r.span(int(n)))
	return &s
}

// compactNullableString reads a uvarint(length+1) string; 0 is null.
func (r *reader) compactNullableString() *string {
	n := r.uvarint()
	if n == 0 || r.bad {
		return nil
	}
	if n-1 > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	s := string(r.span(int(n - 1)))
	return &s
}

// string reads a non-null string in the request's encoding.
func (r *reader) string(flexible bool) string {
	var s *string
	if flexible {
		s = r.compactNullableString()
	} else {
		s = r.nullableString()
	}
	if s == nil {
		r.fail()
		return ""
	}
	return *s
}

// arrayLen reads an array length in the request's encoding, refusing null
// and lengths the rest of the request cannot hold (an element takes at
// least min bytes).
func (r *reader) arrayLen(flexible bool, min int) int {
	var n int64
	if flexible {
		n = int64(r.uvarint()) - 1
	} else {
		n = int64(r.int32())
	}
	if r.bad || n < 0 || n*int64(min) > int64(len(r.b)) {
		r.fail()
		return 0
	}
	return int(n)
}

// nullableBytes reads bytes in the request's encoding; null is nil.
func (r *reader) nullableBytes(flexible bool) []byte {
	var n int64
	if flexible {
		n = int64(r.uvarint()) - 1
	} else {
		n = int64(r.int32())
	}
	if r.bad || n == -1 {
		return nil
	}
	if n < 0 || n > int64(len(r.b)) {
		r.fail()
		return nil
	}
	return r.span(int(n))
}

// skipTags skips a tagged-fields section.
func (r *reader) skipTags() {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return
	}
	for i := uint64(0); i < n && !r.bad; i++ {
		r.uvarint() // tag
		size := r.uvarint()
		if size > uint64(len(r.b)) {
			r.fail()
			return
		}
		r.span(int(size))
	}
}

// header is a request header (v1, or v2 for flexible requests).
type header struct {
	key      int16
	version  int16
	corr     int32
	clientID string
}

// produceRequest is a Produce request, v0 to v11; record sets alias the
// request bytes.
type produceRequest struct {
	transactionalID *string
	acks            int16
	timeoutMillis   int32
	topics          []produceTopic
}

type produceTopic struct {
	name       string
	partitions []producePartition
}

type producePartition struct {
	index   int32
	records []byte
}

// parseProduce decodes a Produce request body (after the header).
func parseProduce(version int16, body []byte) (produceRequest, error) {
	flexible := version >= 9
	r := reader{b: body}
	var p produceRequest
	if version >= 3 {
		if flexible {
			p.transactionalID = r.compactNullableString()
		} else {
			p.transactionalID = r.nullableString()
		}
	}
	p.acks = r.int16()
	p.timeoutMillis = r.int32()
	nt := r.arrayLen(flexible, 3)
	p.topics = make([]produceTopic, 0, min(nt, 16))
	for range nt {
		if r.bad {
			break
		}
		t := produceTopic{name: r.string(flexible)}
		np := r.arrayLen(flexible, 5)
		t.partitions = make([]producePartition, 0, min(np, 16))
		for range np {
			if r.bad {
				break
			}
			t.partitions = append(t.partitions, producePartition{index: r.int32(), records: r.nullableBytes(flexible)})
			if flexible {
				r.skipTags()
			}
		}
		if flexible {
			r.skipTags()
		}
		p.topics = append(p.topics, t)
	}
	if flexible {
		r.skipTags()
	}
	if r.bad || len(r.b) != 0 {
		return produceRequest{}, errMalformed
	}
	return p, nil
}
