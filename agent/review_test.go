package agent

import (
	"bytes"
	"compress/gzip"
	"runtime"
	"testing"
	"unsafe"
)

// An NDJSON body of empty lines holds no message: 400, and the request may
// not cost memory out of proportion to its body (MaxInflightBytes counts
// the body only). Pre-sizing the message slice from the newline count
// allocates sizeof(Msg) per empty line: ~224x the body.
func TestReviewNDJSONEmptyLinesBoundedMemory(t *testing.T) {
	mem := &memSink{}
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	body := bytes.Repeat([]byte{'\n'}, 1<<20)
	do(t, "POST", ta.url+"/v1/topics/orders", "application/x-ndjson", []byte("warm\n"), nil)
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	r := do(t, "POST", ta.url+"/v1/topics/orders", "application/x-ndjson", body, nil)
	runtime.ReadMemStats(&m1)
	if r.status != 400 {
		t.Fatalf("push of empty lines: %d %s, want 400", r.status, r.raw)
	}
	alloc := m1.TotalAlloc - m0.TotalAlloc
	t.Logf("body %d bytes; allocated %d bytes during the request (sizeof(Msg) = %d)", len(body), alloc, unsafe.Sizeof(Msg{}))
	if limit := uint64(32 * len(body)); alloc > limit {
		t.Errorf("a %d-byte NDJSON body of empty lines allocated %d bytes (> %d): memory is not bounded by the body", len(body), alloc, limit)
	}
}

// The same through Content-Encoding: gzip: about 1 KiB on the wire.
func TestReviewNDJSONGzipEmptyLinesBoundedMemory(t *testing.T) {
	mem := &memSink{}
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(bytes.Repeat([]byte{'\n'}, 1<<20))
	zw.Close()
	do(t, "POST", ta.url+"/v1/topics/orders", "application/x-ndjson", []byte("warm\n"), nil)
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	r := do(t, "POST", ta.url+"/v1/topics/orders", "application/x-ndjson", z.Bytes(), map[string]string{"Content-Encoding": "gzip"})
	runtime.ReadMemStats(&m1)
	if r.status != 400 {
		t.Fatalf("push of empty lines: %d %s, want 400", r.status, r.raw)
	}
	alloc := m1.TotalAlloc - m0.TotalAlloc
	t.Logf("%d bytes on the wire, 1 MiB decoded; allocated %d bytes during the request", z.Len(), alloc)
	if limit := uint64(32 << 20); alloc > limit {
		t.Errorf("a %d-byte gzip NDJSON body (1 MiB of empty lines) allocated %d bytes (> %d)", z.Len(), alloc, limit)
	}
}
