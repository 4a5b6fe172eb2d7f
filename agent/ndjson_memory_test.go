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
func TestNDJSONEmptyLinesCostNoMemory(t *testing.T) {
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
func TestNDJSONGzipEmptyLinesCostNoMemory(t *testing.T) {
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

// Tiny NDJSON lines cost a Msg each: they are reserved in MaxInflightBytes
// as they are split, so a request whose messages alone need more than the
// whole budget is refused with 413 before it takes that memory, and the
// budget is whole again afterwards.
func TestNDJSONMessagesAreReservedInTheInflightBudget(t *testing.T) {
	mem := &memSink{}
	const budget = 8 << 20
	ta := startAgent(t, t.TempDir(), Options{MaxInflightBytes: budget, Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	body := bytes.Repeat([]byte("a\n"), 512<<10) // 1 MiB, 524,288 messages: ~117 MB of Msg
	do(t, "POST", ta.url+"/v1/topics/orders", "application/x-ndjson", []byte("warm\n"), nil)
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	r := do(t, "POST", ta.url+"/v1/topics/orders", "application/x-ndjson", body, nil)
	runtime.ReadMemStats(&m1)
	if r.status != 413 || !bytes.Contains(r.raw, []byte("SLUICE_MAX_INFLIGHT_BYTES")) {
		t.Fatalf("push of %d tiny lines: %d %s, want 413 naming SLUICE_MAX_INFLIGHT_BYTES", 512<<10, r.status, r.raw)
	}
	if alloc, limit := m1.TotalAlloc-m0.TotalAlloc, uint64(4*budget); alloc > limit {
		t.Errorf("the refused request allocated %d bytes (> %d)", alloc, limit)
	}
	if n := ta.a.inflight.Load(); n != 0 {
		t.Errorf("in-flight bytes after the request: %d, want 0", n)
	}
	// Within the budget the same shape is taken.
	small := bytes.Repeat([]byte("a\n"), 1000)
	if r := do(t, "POST", ta.url+"/v1/topics/orders", "application/x-ndjson", small, nil); r.status != 202 || len(r.ids) != 1000 {
		t.Fatalf("push of 1000 tiny lines: %d %s", r.status, r.raw)
	}
	if n := ta.a.inflight.Load(); n != 0 {
		t.Errorf("in-flight bytes after the accepted request: %d, want 0", n)
	}
}

// The same for a JSON batch: its messages are reserved as they are decoded.
func TestJSONBatchMessagesAreReservedInTheInflightBudget(t *testing.T) {
	mem := &memSink{}
	const budget = 8 << 20
	ta := startAgent(t, t.TempDir(), Options{MaxInflightBytes: budget, Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	one := []byte(`{"topic":"t","value":1},`)
	body := append([]byte(`{"messages":[`), bytes.Repeat(one, 40000)...)
	body = append(body[:len(body)-1], "]}"...) // ~1 MB, 40,000 messages: ~9 MB of Msg
	r := do(t, "POST", ta.url+"/v1/messages", "application/json", body, nil)
	if r.status != 413 || !bytes.Contains(r.raw, []byte("SLUICE_MAX_INFLIGHT_BYTES")) {
		t.Fatalf("batch of 40,000 messages: %d %s, want 413 naming SLUICE_MAX_INFLIGHT_BYTES", r.status, r.raw)
	}
	if n := ta.a.inflight.Load(); n != 0 {
		t.Errorf("in-flight bytes after the request: %d, want 0", n)
	}
	small := append([]byte(`{"messages":[`), bytes.Repeat(one, 1000)...)
	small = append(small[:len(small)-1], "]}"...)
	if r := do(t, "POST", ta.url+"/v1/messages", "application/json", small, nil); r.status != 202 || len(r.ids) != 1000 {
		t.Fatalf("batch of 1000: %d %.200s", r.status, r.raw)
	}
	// Field names match without regard to case, and the last repeated key
	// counts, as with encoding/json.
	if r := do(t, "POST", ta.url+"/v1/messages", "application/json",
		[]byte(`{"messages":[{"topic":"t","value":1}],"Messages":[{"topic":"t","value":2},{"topic":"t","value":3}]}`), nil); r.status != 202 || len(r.ids) != 2 {
		t.Fatalf("repeated key: %d %s", r.status, r.raw)
	}
}
