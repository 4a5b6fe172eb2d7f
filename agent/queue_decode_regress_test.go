package agent

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// craftedQueueBodies are crafted bodies for the fast path: duplicates, case
// variants, numbers, escapes, whitespace, nesting, trailing data, BOMs.
var craftedQueueBodies = []string{
	`{"max":10,"wait":"1s","visibility":"1m"}`, `{"max":1,"max":2}`, `{"max":1,"Max":2}`, `{"Max":2,"max":1}`,
	`{"max":0}`, `{"max":00}`, `{"max":-0}`, `{"max":-1}`, `{"max":1e3}`, `{"max":1E3}`, `{"max":1.0}`,
	`{"max":999999999}`, `{"max":1000000000}`, `{"max":99999999999999999999999}`, `{"max":+1}`,
	`{"max":"1"}`, `{"max":null}`, `{"max":true}`, `{"max":[1]}`, `{"max":{}}`, `{"max":1 }`, `{"max" :1}`,
	`{"wait":"0s"}`, `{"wait":"-1s"}`, `{"wait":"1.5s"}`, `{"wait":"1h2m3.4s"}`, `{"wait":"9999999999h"}`,
	`{"wait":"5s","wait":"1s"}`, `{"wait":"5s","Wait":"1s"}`, `{"wait":"\u0035s"}`, `{"wait":"5\u0073"}`,
	`{"wait":""}`, `{"wait":" 5s"}`, `{"wait":"5s "}`, `{"wait":5}`, `{"wait":null}`, `{"wait":"µs"}`, `{"wait":"1µs"}`,
	`{"wait":"1us"}`, `{"wait":"+1s"}`, `{"wait":".5s"}`, `{"wait":"1s1s"}`,
	`{"visibility":"1m","visibility":"2m"}`, `{"delay":"10s"}`, `{"delay":"10s","delay":"1s"}`,
	`{"receipts":[]}`, `{"receipts":[ ]}`, `{"receipts":null}`, `{"receipts":[null]}`, `{"receipts":[1]}`,
	`{"receipts":["a","a"]}`, `{"receipts":["a"],"receipts":["b"]}`, `{"receipts":["a"],"RECEIPTS":["b"]}`,
	`{"receipts":[""]}`, `{"receipts":["a\/b"]}`, `{"receipts":["a/b"]}`, `{"receipts":["a\u0000"]}`,
	`{"receipts":["\ud800"]}`, `{"receipts":["` + "\xff" + `"]}`, `{"receipts":["` + "\x7f" + `"]}`,
	`{"receipts":["a"` + "\t" + `,` + "\n" + `"b"]}`, `{"receipts":[["a"]]}`, `{"receipts":{"a":1}}`, `{"receipts":"a"}`,
	`{"receipts":["a",]}`, `{"receipts":[,"a"]}`, `{"receipts":["a"]]}`, `{"receipts":["a"}`,
	`{}`, `{ }`, `{`, `}`, `{"max":1,}`, `{,"max":1}`, `{"max":1}}`, `{"max":1} {}`, `{"max":1}x`, `{"max":1}0`,
	`{"max":1}` + "\x00", "\xef\xbb\xbf" + `{"max":1}`, `{"max":1}` + "\xef\xbb\xbf", `null`, `[]`, `""`, `1`,
	"{\"max\":1}\v", "\f{\"max\":1}", "{\"max\":1}\u00a0", "{\"max\":1}\u3000", "{\u00a0\"max\":1}",
	`{"max":1,"bogus":2}`, `{"bogus":2}`, `{"":1}`, `{"max\u0000":1}`, `{"m\u0061x":3}`, `{"ma` + "\u212a" + `":1}`,
	`{"max":1 , "wait" : "1s" , "visibility" : "1s"}`, "{\r\n\t\"max\"\r\n:\r\n1\r\n}",
	`{"max":1,"wait":"1s","visibility":"1s","delay":"1s","receipts":["x"]}`,
	// encoding/json folds keys with the Kelvin sign and long s (ſ = s).
	`{"receipt` + "ſ" + `":["a"]}`, `{"deLay":"1s"}`,
}

// The whole of decodeQueueRequest (fast path, then fallback) must give
// what decodeStrict gives: the same request on success, the same error
// text on failure.
func TestQueueDecodeQueueRequestMatchesDecodeStrict(t *testing.T) {
	for _, s := range craftedQueueBodies {
		compareWithDecodeStrict(t, []byte(s))
	}
}

func compareWithDecodeStrict(t *testing.T, b []byte) {
	t.Helper()
	var got, want queueRequest
	gerr := decodeQueueRequest(bytes.Clone(b), &got)
	werr := decodeStrict(bytes.Clone(b), &want)
	if fmt.Sprint(gerr) != fmt.Sprint(werr) {
		t.Errorf("%q: decodeQueueRequest err %v, decodeStrict err %v", b, gerr, werr)
		return
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Errorf("%q: decodeQueueRequest %s, decodeStrict %s", b, fmtQueueRequest(got), fmtQueueRequest(want))
	}
}

func fmtQueueRequest(r queueRequest) string {
	var sb strings.Builder
	if r.Max != nil {
		fmt.Fprintf(&sb, "max=%d ", *r.Max)
	}
	fmt.Fprintf(&sb, "wait=%v/%v vis=%v/%v delay=%v/%v ", r.Wait.d, r.Wait.set, r.Visibility.d, r.Visibility.set, r.Delay.d, r.Delay.set)
	if r.Receipts != nil {
		fmt.Fprintf(&sb, "receipts=%q", *r.Receipts)
	}
	return sb.String()
}

// FuzzQueueDecodeQueueRequest: the differential in full (both
// directions and the error text), seeded with the crafted bodies.
func FuzzQueueDecodeQueueRequest(f *testing.F) {
	for _, s := range craftedQueueBodies {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { compareWithDecodeStrict(t, b) })
}
