package agent

import (
	"bytes"
	"runtime"
	"testing"
)

// REST Proxy bodies never take memory out of proportion to the body
// outside MaxInflightBytes (the native batch and NDJSON paths reserve
// sizeof(Msg) per decoded message, ndjson_memory_test.go): a 1 MiB v2 body
// of ~350k empty records ({} each) would decode into ~350k records and as
// many messages; they are reserved before decoding, so it is refused 413
// at once.
func TestRestProxyV2TinyRecordsMemory(t *testing.T) {
	mem := &memSink{}
	const budget = 8 << 20
	ta := startAgent(t, t.TempDir(), Options{MaxInflightBytes: budget, Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	n := (1 << 20) / 3
	body := append([]byte(`{"records":[{}`), bytes.Repeat([]byte(`,{}`), n)...)
	body = append(body, "]}"...)
	do(t, "POST", ta.url+"/topics/orders", rpV2JSON, []byte(`{"records":[{"value":1}]}`), nil)
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	r := do(t, "POST", ta.url+"/topics/orders", rpV2JSON, body, nil)
	runtime.ReadMemStats(&m1)
	alloc := m1.TotalAlloc - m0.TotalAlloc
	t.Logf("body %d bytes, %d records: %d %s; allocated %d bytes", len(body), n+1, r.status, r.raw, alloc)
	if r.status/100 != 4 {
		t.Fatalf("status %d", r.status)
	}
	if limit := uint64(4 * budget); alloc > limit {
		t.Errorf("a %d-byte v2 body allocated %d bytes (> %d = 4x SLUICE_MAX_INFLIGHT_BYTES): not reserved in the in-flight budget", len(body), alloc, limit)
	}
	if ta.sp.LastSeq() != 1 {
		t.Fatalf("spooled %d", ta.sp.LastSeq())
	}
}

// topArrayElems bounds a v2 request's records without decoding: commas
// inside strings and nested values do not count, an array counts one more
// than its commas.
func TestTopArrayElems(t *testing.T) {
	for body, want := range map[string]int64{
		`{"records":[{}]}`:       1,
		`{"records":[{},{},{}]}`: 3,
		`{"records":[{"value":{"a":[1,2,3]},"key":"x,y]"}]}`:    1,
		`{"records":[{"value":"\",[{"},{}],"key_schema":"a,b"}`: 2,
		`{"records":[]}`:        1,
		`{"key_schema":"[,,]"}`: 0,
	} {
		if got := topArrayElems([]byte(body)); got != want {
			t.Errorf("%s: %d, want %d", body, got, want)
		}
	}
}
