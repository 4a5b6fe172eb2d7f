package nats

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	natsgo "github.com/nats-io/nats.go"

	"github.com/sluiceio/sluice/sink"
)

func TestCheckSubject(t *testing.T) {
	for _, s := range []string{"orders", "a.b.c", "events.orders-v2", "ünïcode.ok", "a_b", strings.Repeat("x", MaxSubjectBytes)} {
		if err := checkSubject(s); err != nil {
			t.Errorf("checkSubject(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", ".a", "a.", "a..b", "a.*", "a.>", "*", ">", "a b", "a\tb", "a\nb", "a\x00b", "a\x7fb", "\xff",
		strings.Repeat("x", MaxSubjectBytes+1)} {
		if err := checkSubject(s); err == nil {
			t.Errorf("checkSubject(%q) accepted", s)
		}
	}
	// Wildcard characters inside a token are literal.
	if err := checkSubject("a*b.c>d"); err != nil {
		t.Errorf("wildcard characters inside a token: %v", err)
	}
}

func TestVerbatim(t *testing.T) {
	for _, v := range []string{"", "abc", "ünïcödé ✓", "a b", "x=1;y=2", `"quoted"`} {
		if !verbatim([]byte(v)) {
			t.Errorf("verbatim(%q) = false", v)
		}
	}
	for _, v := range []string{" lead", "trail ", "a\r\nb", "tab\t", "\x00", "\xff\xfe", "a\x7f"} {
		if verbatim([]byte(v)) {
			t.Errorf("verbatim(%q) = true", v)
		}
	}
}

func TestEncodeHeaders(t *testing.T) {
	m := sink.Message{
		ID:  "3f9a-1-7",
		Key: []byte("customer-7"),
		Headers: []sink.Header{
			{Key: "trace", Value: []byte("t-1")},
			{Key: "bin", Value: []byte{0x00, 0xc3, 0x28}},
			{Key: "dup", Value: []byte("1")},
			{Key: "dup", Value: []byte(" 2")}, // needs escaping: the whole name is escaped
			{Key: "Nats-Rollup", Value: []byte("all")},
			{Key: "sluice-key", Value: []byte("not the key")},
			{Key: "sluice-b64-x", Value: []byte("y")},
			{Key: "sluice-id", Value: []byte("ignored")},
			{Key: "empty", Value: []byte{}},
		},
	}
	h, err := encodeHeaders(&m)
	if err != nil {
		t.Fatal(err)
	}
	want := natsgo.Header{
		"trace":                   {"t-1"},
		"sluice-b64-bin":          {"AMMo"},
		"sluice-b64-dup":          {"MQ==", "IDI="},
		"sluice-b64-Nats-Rollup":  {"YWxs"},
		"sluice-b64-sluice-key":   {"bm90IHRoZSBrZXk="},
		"sluice-b64-sluice-b64-x": {"eQ=="},
		"empty":                   {""},
		KeyHeader:                 {"customer-7"},
		sink.IDHeader:             {"3f9a-1-7"},
		MsgIDHeader:               {"3f9a-1-7"},
	}
	if len(h) != len(want) {
		t.Fatalf("headers %v, want %v", h, want)
	}
	for k, v := range want {
		if !slices.Equal(h[k], v) {
			t.Errorf("header %s = %q, want %q", k, h[k], v)
		}
	}
	// Every value is one nats.go sends unchanged, every name one it accepts.
	for k, vs := range h {
		if !validHeaderName(k) {
			t.Errorf("invalid name %q", k)
		}
		for _, v := range vs {
			if !verbatim([]byte(v)) {
				t.Errorf("%s: value %q is not carried verbatim", k, v)
			}
		}
	}

	d, err := DecodeHeaders(h)
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != m.ID || string(d.Key) != "customer-7" {
		t.Fatalf("decoded id %q key %q", d.ID, d.Key)
	}
	wantHeaders := []sink.Header{
		{Key: "Nats-Rollup", Value: []byte("all")},
		{Key: "bin", Value: []byte{0x00, 0xc3, 0x28}},
		{Key: "dup", Value: []byte("1")},
		{Key: "dup", Value: []byte(" 2")},
		{Key: "empty", Value: []byte{}},
		{Key: "sluice-b64-x", Value: []byte("y")},
		{Key: "sluice-key", Value: []byte("not the key")},
		{Key: "trace", Value: []byte("t-1")},
	}
	if !slices.EqualFunc(d.Headers, wantHeaders, func(a, b sink.Header) bool { return a.Key == b.Key && bytes.Equal(a.Value, b.Value) }) {
		t.Fatalf("decoded headers %q, want %q", d.Headers, wantHeaders)
	}
}

func TestEncodeKeyAndID(t *testing.T) {
	cases := []struct {
		name    string
		key     []byte
		id      string
		headers natsgo.Header
	}{
		{"no key", nil, "i1", natsgo.Header{sink.IDHeader: {"i1"}, MsgIDHeader: {"i1"}}},
		{"empty key", []byte{}, "i1", natsgo.Header{KeyHeader: {""}, sink.IDHeader: {"i1"}, MsgIDHeader: {"i1"}}},
		{"binary key", []byte{0xff, 0x00, 0xfe}, "i1", natsgo.Header{KeyB64Header: {"/wD+"}, sink.IDHeader: {"i1"}, MsgIDHeader: {"i1"}}},
		{"id not verbatim", nil, "a\nb", natsgo.Header{B64Prefix + sink.IDHeader: {"YQpi"}, MsgIDHeader: {"YQpi"}}},
		{"no id", []byte("k"), "", natsgo.Header{KeyHeader: {"k"}}},
	}
	for _, c := range cases {
		m := sink.Message{ID: c.id, Key: c.key}
		h, err := encodeHeaders(&m)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != len(c.headers) {
			t.Errorf("%s: headers %q, want %q", c.name, h, c.headers)
			continue
		}
		for k, v := range c.headers {
			if !slices.Equal(h[k], v) {
				t.Errorf("%s: header %s = %q, want %q", c.name, k, h[k], v)
			}
		}
		d, err := DecodeHeaders(h)
		if err != nil {
			t.Fatal(err)
		}
		if d.ID != c.id || !bytes.Equal(d.Key, c.key) || (d.Key == nil) != (c.key == nil) {
			t.Errorf("%s: decoded id %q key %q", c.name, d.ID, d.Key)
		}
	}
}

func TestEncodeRefusesHeaderNames(t *testing.T) {
	for _, n := range []string{"", "a b", "a:b", "ü", "a\nb", "a(b)", "a/b"} {
		m := sink.Message{ID: "x", Headers: []sink.Header{{Key: n, Value: []byte("v")}}}
		if _, err := encodeHeaders(&m); !errors.Is(err, ErrInvalidHeader) {
			t.Errorf("header name %q: %v, want ErrInvalidHeader", n, err)
		}
	}
}

// FuzzHeaders: whatever headers, key and id a message has, the encoded
// headers are ones NATS carries unchanged, and decode to the message's.
func FuzzHeaders(f *testing.F) {
	f.Add("trace", []byte("t-1"), "Nats-TTL", []byte("1s"), []byte("k"), "id-1")
	f.Add("sluice-key", []byte{0}, "sluice-b64-a", []byte(" "), []byte{0xff}, "")
	f.Add("bin", []byte{0xc3, 0x28}, "bin", []byte("ok"), []byte{}, "a\r\nb")
	f.Fuzz(func(t *testing.T, n1 string, v1 []byte, n2 string, v2 []byte, key []byte, id string) {
		m := sink.Message{ID: id, Key: key, Headers: []sink.Header{{Key: n1, Value: v1}, {Key: n2, Value: v2}}}
		h, err := encodeHeaders(&m)
		if err != nil {
			if !errors.Is(err, ErrInvalidHeader) || validHeaderName(n1) && validHeaderName(n2) {
				t.Fatalf("encode: %v", err)
			}
			return
		}
		for k, vs := range h {
			if !validHeaderName(k) {
				t.Fatalf("invalid header name %q", k)
			}
			for _, v := range vs {
				if !verbatim([]byte(v)) {
					t.Fatalf("%s: value %q not carried verbatim", k, v)
				}
			}
		}
		d, err := DecodeHeaders(h)
		if err != nil {
			t.Fatal(err)
		}
		if d.ID != id || !bytes.Equal(d.Key, key) || (d.Key == nil) != (key == nil) {
			t.Fatalf("id %q key %q, want %q %q", d.ID, d.Key, id, key)
		}
		var want []sink.Header
		for _, hd := range m.Headers {
			if !strings.EqualFold(hd.Key, sink.IDHeader) {
				want = append(want, hd)
			}
		}
		slices.SortStableFunc(want, func(a, b sink.Header) int { return strings.Compare(a.Key, b.Key) })
		if len(d.Headers) != len(want) {
			t.Fatalf("headers %q, want %q", d.Headers, want)
		}
		for i := range want {
			if d.Headers[i].Key != want[i].Key || !bytes.Equal(d.Headers[i].Value, want[i].Value) {
				t.Fatalf("headers %q, want %q", d.Headers, want)
			}
		}
	})
}
