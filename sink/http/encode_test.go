package httpsink

import (
	"strings"
	"testing"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/sinktest"
)

func TestRawJSON(t *testing.T) {
	cases := map[string]bool{
		`{"b":1,"a":[1.50,"\u00e9"]}`: true,
		`[1,2,3]`:                     true,
		`null`:                        true,
		`"a JSON string"`:             true,
		`42`:                          true,
		"{\n  \"pretty\": true\n}":    true, // inner whitespace is kept by the receiver
		"{\n  \"pretty\": true\n}\n":  false,
		` 42 `:                        false,
		`42 `:                         false,
		``:                            false,
		`plain text`:                  false,
		`{"a":1}{"b":2}`:              false,
		"\"\xff\"":                    false, // JSON-valid to Go, but not UTF-8
		`{"a":`:                       false,
		// Nested deeper than jsonenc.MaxValueDepth: readers with a
		// lower limit than Go's would refuse the whole batch.
		strings.Repeat("[", 64) + strings.Repeat("]", 64): true,
		strings.Repeat("[", 65) + strings.Repeat("]", 65): false,
		// Numbers longer than readers take (Jackson 1,000 characters,
		// Python's int 4,300 digits), or out of a float64's range
		// (encoding/json refuses them).
		"0." + strings.Repeat("9", 998):       true,
		"0." + strings.Repeat("9", 999):       false,
		"[" + strings.Repeat("9", 5001) + "]": false,
		"1e400":                               false,
		`{"a":-1E400}`:                        false,
		"1e308":                               true,
	}
	for in, want := range cases {
		if got := rawJSON([]byte(in)); got != want {
			t.Errorf("rawJSON(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestCheckMessage(t *testing.T) {
	h := func(kv ...string) []sink.Header {
		var hs []sink.Header
		for i := 0; i+1 < len(kv); i += 2 {
			hs = append(hs, sink.Header{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return hs
	}
	cases := []struct {
		name   string
		m      sink.Message
		reason string // "" = representable
	}{
		{"ok", sink.Message{Topic: "t", Key: []byte("é"), Headers: h("a", "1", "b", "")}, ""},
		{"nil key", sink.Message{Topic: "t"}, ""},
		{"binary key", sink.Message{Topic: "t", Key: []byte{0xff}}, ReasonNotUTF8},
		{"binary header value", sink.Message{Topic: "t", Headers: h("a", "\xc3\x28")}, ReasonNotUTF8},
		{"binary header name", sink.Message{Topic: "t", Headers: h("\xff", "1")}, ReasonNotUTF8},
		{"binary topic", sink.Message{Topic: "t\xff"}, ReasonNotUTF8},
		{"binary id", sink.Message{Topic: "t", ID: "\xff"}, ReasonNotUTF8},
		{"repeated header", sink.Message{Topic: "t", Headers: h("a", "1", "b", "2", "a", "3")}, ReasonBadHeader},
		{"case differs", sink.Message{Topic: "t", Headers: h("a", "1", "A", "2")}, ""},
		{"empty header name", sink.Message{Topic: "t", Headers: h("", "1")}, ReasonBadHeader},
		{"id header ignored", sink.Message{Topic: "t", Headers: h("sluice-id", "\xff", "SLUICE-ID", "x")}, ""},
	}
	for _, c := range cases {
		err := checkMessage(&c.m)
		switch {
		case c.reason == "" && err != nil:
			t.Errorf("%s: %v, want representable", c.name, err)
		case c.reason != "" && (!sink.IsPermanent(err) || sink.Reason(err) != c.reason):
			t.Errorf("%s: %v (reason %s), want Permanent %s", c.name, err, sink.Reason(err), c.reason)
		}
	}
}

// FuzzRoundTrip: every message checkMessage accepts decodes, with the
// receiver's rules, to its own bytes.
func FuzzRoundTrip(f *testing.F) {
	for _, m := range sinktest.Variety(caps) {
		var hk, hv string
		if len(m.Headers) > 0 {
			hk, hv = m.Headers[0].Key, string(m.Headers[0].Value)
		}
		f.Add(m.Topic, m.Key != nil, string(m.Key), string(m.Value), hk, hv, m.ID)
	}
	f.Add("t", true, "\u2028", "\"\u2029\"", "h\"", "\x00", "id")
	f.Fuzz(func(t *testing.T, topic string, hasKey bool, key, value, hk, hv, id string) {
		m := sink.Message{Topic: topic, Value: []byte(value), ID: id, Partition: sink.NoPartition}
		if hasKey {
			m.Key = []byte(key)
		}
		if hk != "" && !strings.EqualFold(hk, sink.IDHeader) {
			m.Headers = []sink.Header{{Key: hk, Value: []byte(hv)}}
		}
		if checkMessage(&m) != nil {
			return
		}
		body := appendBatch(nil, []sink.Message{m}, nil)
		got, err := decodeBatch(body)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if err := sinktest.Diff(caps, []sink.Message{m}, got); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
	})
}
