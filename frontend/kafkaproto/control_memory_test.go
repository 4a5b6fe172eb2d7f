package kafkaproto

import (
	"encoding/binary"
	"runtime"
	"testing"
)

// arrayBomb is a request frame of size bytes (key, version, then body)
// that is well formed up to its last bytes: each array offset in arrays
// (from the start of the frame) claims as many elements as there are bytes
// left, which kmsg allocates before it reads them.
func arrayBomb(size int, head []byte, arrays ...int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint32(b, uint32(size-4))
	copy(b[4:], head)
	for _, at := range arrays {
		binary.BigEndian.PutUint32(b[at:], uint32(size-at-4))
	}
	return b
}

// fetchBomb: Fetch v4, client id "test"; its topic array and the first
// topic's partition array claim every byte left.
func fetchBomb(size int) []byte {
	h := binary.BigEndian.AppendUint16(nil, keyFetch)
	h = binary.BigEndian.AppendUint16(h, 4)
	h = binary.BigEndian.AppendUint32(h, 1) // correlation id
	h = binary.BigEndian.AppendUint16(h, 4)
	h = append(h, "test"...)
	h = binary.BigEndian.AppendUint32(h, 0xffffffff) // replica id -1
	h = binary.BigEndian.AppendUint32(h, 0)          // max wait
	h = binary.BigEndian.AppendUint32(h, 0)          // min bytes
	h = binary.BigEndian.AppendUint32(h, 1<<20)      // max bytes
	h = append(h, 0)                                 // isolation level
	topics := 4 + len(h)
	h = append(h, 0, 0, 0, 0) // topic count
	h = append(h, 0, 1, 't')  // topic name
	parts := 4 + len(h)
	h = append(h, 0, 0, 0, 0) // partition count
	return arrayBomb(size, h, topics, parts)
}

// metadataBomb: Metadata v4, client id "test"; its topic array claims
// every byte left (each empty name takes two).
func metadataBomb(size int) []byte {
	h := binary.BigEndian.AppendUint16(nil, keyMetadata)
	h = binary.BigEndian.AppendUint16(h, 4)
	h = binary.BigEndian.AppendUint32(h, 1)
	h = binary.BigEndian.AppendUint16(h, 4)
	h = append(h, "test"...)
	topics := 4 + len(h)
	h = append(h, 0, 0, 0, 0)
	return arrayBomb(size, h, topics)
}

// Requests other than Produce are charged to the in-flight budget at
// controlExpansion times their size, because kmsg allocates arrays a
// frame only claims. That charge must cover what the largest such frame
// costs to decode: a Fetch at maxSmallControlBytes, a Metadata request at
// maxControlBytes. A larger Fetch is refused unread.
func TestControlFramesCostNoMoreThanTheirCharge(t *testing.T) {
	e := start(t, t.TempDir(), Options{Partitions: map[string]int32{"t": 1}})
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"fetch", fetchBomb(maxSmallControlBytes)},
		{"metadata", metadataBomb(maxControlBytes)},
	} {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c := dial(t, e.srv.Addr())
		c.send(tc.b)
		if !c.closed() {
			t.Fatalf("%s: a malformed frame was not refused", tc.name)
		}
		runtime.ReadMemStats(&after)
		cost := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s: a %d-byte frame allocated %d bytes (%.0f times its size)", tc.name, len(tc.b), cost, float64(cost)/float64(len(tc.b)))
		if cost > controlExpansion*uint64(len(tc.b)) {
			t.Errorf("%s: a %d-byte frame allocated %d bytes, more than the %d times its size it is charged", tc.name, len(tc.b), cost, controlExpansion)
		}
	}
	bad := e.srv.m.badRequests.Get()
	c := dial(t, e.srv.Addr())
	c.send(fetchBomb(4 + maxSmallControlBytes + 1)[:8]) // its length and key are enough
	if !c.closed() || e.srv.m.badRequests.Get() != bad+1 {
		t.Fatal("a Fetch frame over maxSmallControlBytes was not refused before its body")
	}
}
