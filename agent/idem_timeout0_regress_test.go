package agent

import (
	"testing"
)

// Idempotency-Key (README: "a repeat … returns the original ids", and
// Sluice-Timeout is not part of the request): a repeat of a request whose
// outcome is long known, sent with Sluice-Timeout: 0, must get the original
// ids. idemCheck waits on the finished entry's done channel and a timer of
// the request's own timeout in one select; with a 0 timeout both are ready
// and select picks one at random, so about half of such repeats answer
// 503 spool_timeout ("no known outcome yet") for a request that was
// spooled long ago.
func TestIdempotentRepeatWithZeroTimeoutReplays(t *testing.T) {
	mem := &memSink{}
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	key := map[string]string{"Idempotency-Key": "order-1"}
	first := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("x"), key)
	if first.status != 202 {
		t.Fatalf("push: %+v", first)
	}
	repeat := map[string]string{"Idempotency-Key": "order-1", "Sluice-Timeout": "0"}
	bad := 0
	var last reply
	for range 40 {
		r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("x"), repeat)
		if r.status != 202 || len(r.ids) != 1 || r.ids[0] != first.ids[0] {
			bad++
			last = r
		}
	}
	if bad > 0 {
		t.Fatalf("%d of 40 repeats of a spooled request answered %d %s instead of its ids", bad, last.status, last.code)
	}
}
