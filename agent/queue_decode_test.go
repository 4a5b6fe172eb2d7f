package agent

import "testing"

// The plain bodies take the fast path (else it would be dead code and
// FuzzQueueDecodeQueueRequest, which holds it to decodeStrict, vacuous).
func TestQueueRequestFastPathTakesPlainBodies(t *testing.T) {
	for _, s := range []string{
		`{"max":10,"wait":"1s","visibility":"1m"}`,
		`{"receipts":["AbC-_1","x"]}`,
		`{"receipts":["a"],"delay":"10s"}`,
		`{}`,
	} {
		var r queueRequest
		if !fastQueueRequest([]byte(s), &r) {
			t.Errorf("%s: not read by hand", s)
		}
	}
	var r queueRequest
	if err := decodeQueueRequest([]byte(`{"max":1,"bogus":2}`), &r); err == nil {
		t.Fatal("an unknown field was accepted")
	}
}
