package agent

import (
	"reflect"
	"testing"
)

// FuzzQueueRequestFastPath: whatever the body, the hand-written reader of
// queue request bodies accepts only what decodeStrict accepts, and reads
// it the same. Its seeds (run by every go test) include the shapes
// clients send and the near misses it must leave to decodeStrict.
func FuzzQueueRequestFastPath(f *testing.F) {
	for _, s := range []string{
		`{"max":10,"wait":"1s","visibility":"1m"}`,
		`{"receipts":["AbC-_1","x"]}`,
		`{"receipts":["a"],"delay":"10s"}`,
		`{"receipts":["a"],"visibility":"60s"}`,
		` { "max" : 0 , "receipts" : [ ] } `,
		`{}`,
		`{"max":010}`, `{"max":-1}`, `{"max":1e1}`, `{"max":10.0}`, `{"max":1234567890}`,
		`{"MAX":3}`, `{"max":1,"max":2}`, `{"wait":"5s","wait":"1s"}`,
		`{"wait":"5x"}`, `{"wait":5}`, `{"wait":null}`, `{"receipts":null}`,
		`{"receipts":["a\"b"]}`, `{"receipts":["\u0041"]}`, `{"receipts":["é"]}`,
		`{"receipts":["a",]}`, `{"receipts":["a"]]}`, `{"other":1}`,
		`{"max":1} x`, `{"max":1}{}`, `[1]`, `{"max":1,}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast queueRequest
		if !fastQueueRequest(b, &fast) {
			return
		}
		var slow queueRequest
		if err := decodeStrict(b, &slow); err != nil {
			t.Fatalf("%q: read by hand as %+v, refused by decodeStrict: %v", b, fast, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q: by hand %+v, decodeStrict %+v", b, fast, slow)
		}
	})
}

// The plain bodies take the fast path (else it would be dead code and the
// fuzz test above vacuous).
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
