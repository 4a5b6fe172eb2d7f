package kafka

import (
	"sync"
	"time"

	"github.com/sluiceio/sluice/sink"

	kafkago "github.com/segmentio/kafka-go"
)

// recordBatchOverhead is the fixed part of a v2 record batch: base offset
// (8), length (4), leader epoch (4), magic (1), CRC (4), attributes (2),
// last offset delta (4), first and max timestamp (16), producer id (8),
// producer epoch (2), base sequence (4), record count (4).
const recordBatchOverhead = 61

// varintLen is the length of v as a zigzag varint.
func varintLen(v int64) int {
	u := uint64((v << 1) ^ (v >> 63))
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// bytesFieldLen is the length of a varint-prefixed byte field; nil is -1.
func bytesFieldLen(b []byte) int {
	if b == nil {
		return varintLen(-1)
	}
	return varintLen(int64(len(b))) + len(b)
}

// recordBody is the size of a v2 record's body (everything after its
// length prefix) with the given timestamp and offset delta lengths.
func recordBody(m *sink.Message, addID bool, tsDeltaLen, offDeltaLen int) int {
	n := 1 + tsDeltaLen + offDeltaLen + bytesFieldLen(m.Key) + bytesFieldLen(m.Value)
	hdrs := len(m.Headers)
	if addID {
		hdrs++
		n += varintLen(int64(len(sink.IDHeader))) + len(sink.IDHeader) + varintLen(int64(len(m.ID))) + len(m.ID)
	}
	n += varintLen(int64(hdrs))
	for _, h := range m.Headers {
		n += varintLen(int64(len(h.Key))) + len(h.Key) + bytesFieldLen(h.Value)
	}
	return n
}

// singleRecordBatchSize is the exact uncompressed size of a record batch
// holding m alone: what a broker compares with max.message.bytes for it.
func singleRecordBatchSize(m *sink.Message, addID bool) int {
	body := recordBody(m, addID, 1, 1)
	return recordBatchOverhead + varintLen(int64(body)) + body
}

// recordSizeBound is an upper bound of m's share of a multi-record batch,
// in bytes. It is also at least kafka-go's own estimate of the message
// (Message.totalSize, which its BatchBytes limit counts), so a request that
// fits our bound is never split by kafka-go.
func recordSizeBound(m *sink.Message, addID bool) int {
	body := recordBody(m, addID, 10, 5)
	return varintLen(int64(body)) + body + 8
}

// hasIDHeader reports whether m already carries the sluice-id header
// (chained agents keep the first agent's id).
func hasIDHeader(m *sink.Message) bool {
	for _, h := range m.Headers {
		if h.Key == sink.IDHeader {
			return true
		}
	}
	return false
}

// converter turns sink messages into kafka-go messages whose bytes live in
// one arena owned by the Write: kafka-go may still read them after a
// cancelled Write returned, and the caller's slices must not be retained.
type converter struct {
	arena []byte
	hdrs  []kafkago.Header
}

func (c *converter) bytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	n := len(c.arena)
	c.arena = append(c.arena, b...)
	return c.arena[n:len(c.arena):len(c.arena)]
}

// scratch is the memory of one Write that kafka-go reads: the converted
// messages, their bytes and the delivery slots. It is reused by a later
// Write only when kafka-go is done with it (no Write returned while
// kafka-go could still be sending it).
type scratch struct {
	arena []byte
	hdrs  []kafkago.Header
	km    []kafkago.Message
	refs  []msgRef
	batch []kafkago.Message
	idx   []int32
}

// maxPooledBytes keeps unusually large Writes from pinning their memory.
const maxPooledBytes = 8 << 20

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(sc *scratch) {
	if cap(sc.arena) > maxPooledBytes || cap(sc.km) > 1<<16 {
		return
	}
	clear(sc.km) // drop references to the caller's strings
	clear(sc.batch[:cap(sc.batch)])
	scratchPool.Put(sc)
}

func (sc *scratch) msgRefs(n int) []msgRef {
	if cap(sc.refs) < n {
		sc.refs = make([]msgRef, n)
	}
	return sc.refs[:n]
}

func (sc *scratch) messages(n int) []kafkago.Message {
	if cap(sc.km) < n {
		sc.km = make([]kafkago.Message, n)
	}
	sc.km = sc.km[:n]
	return sc.km
}

// converter sizes the arena and header slab for msgs[i] where use[i].
func (sc *scratch) converter(msgs []sink.Message, use []bool) *converter {
	var nb, nh int
	for i := range msgs {
		if !use[i] {
			continue
		}
		m := &msgs[i]
		nb += len(m.Key) + len(m.Value) + len(m.ID)
		nh += len(m.Headers) + 1
		for _, h := range m.Headers {
			nb += len(h.Value)
		}
	}
	c := &converter{arena: sc.arena[:0], hdrs: sc.hdrs[:0]}
	if cap(c.arena) < nb {
		c.arena = make([]byte, 0, nb)
	}
	if cap(c.hdrs) < nh {
		c.hdrs = make([]kafkago.Header, 0, nh)
	}
	return c
}

func (c *converter) convert(m *sink.Message, topic string, now time.Time) kafkago.Message {
	km := kafkago.Message{
		Topic: topic,
		Key:   c.bytes(m.Key),
		Value: c.bytes(m.Value),
		Time:  m.Time,
	}
	if km.Time.IsZero() {
		km.Time = now
	}
	start := len(c.hdrs)
	for _, h := range m.Headers {
		c.hdrs = append(c.hdrs, kafkago.Header{Key: h.Key, Value: c.bytes(h.Value)})
	}
	if m.ID != "" && !hasIDHeader(m) {
		n := len(c.arena)
		c.arena = append(c.arena, m.ID...)
		c.hdrs = append(c.hdrs, kafkago.Header{Key: sink.IDHeader, Value: c.arena[n:len(c.arena):len(c.arena)]})
	}
	if len(c.hdrs) > start {
		km.Headers = c.hdrs[start:len(c.hdrs):len(c.hdrs)]
	}
	return km
}
