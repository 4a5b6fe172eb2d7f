package jsonenc

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestAppendStringMatchesEncodingJSON compares string escaping with what
// encoding/json decodes, over every byte and some multi-byte edge cases.
func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	var inputs []string
	for c := range 256 {
		inputs = append(inputs, "a"+string([]byte{byte(c)})+"z")
	}
	inputs = append(inputs, "\u2028", "\u2029", "\U0001F600", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "é\xffé")
	for _, in := range inputs {
		out := AppendString(nil, in)
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("AppendString(%q) = %s: %v", in, out, err)
		}
		if want := string([]rune(in)); got != want {
			t.Errorf("AppendString(%q) decodes to %q, want %q", in, got, want)
		}
		if b := AppendString(nil, []byte(in)); !bytes.Equal(b, out) {
			t.Errorf("string and []byte forms differ: %s vs %s", out, b)
		}
	}
}

func TestAppendString(t *testing.T) {
	cases := map[string]string{
		"":                                `""`,
		"plain":                           `"plain"`,
		`q"b\`:                            `"q\"b\\"`,
		"nl\n cr\r tab\t":                 `"nl\n cr\r tab\t"`,
		"\x00\x01\x1f\x7f":                `"\u0000\u0001\u001f` + "\x7f" + `"`,
		"é ✓ \u2028 \u2029 \u2027 \u202a": "\"é ✓ \\u2028 \\u2029 \u2027 \u202a\"",
		"<tag>&":                          `"<tag>&"`,
		"\xe2":                            `"\ufffd"`, // not valid UTF-8: replaced, as encoding/json does
	}
	for in, want := range cases {
		if got := string(AppendString(nil, in)); got != want {
			t.Errorf("AppendString(%q) = %s, want %s", in, got, want)
		}
		if got := string(AppendString(nil, []byte(in))); got != want {
			t.Errorf("AppendString([]byte %q) = %s, want %s", in, got, want)
		}
		if !utf8.ValidString(in) {
			continue
		}
		var back string
		if err := json.Unmarshal([]byte(want), &back); err != nil || back != in {
			t.Errorf("%s decodes to %q (%v), want %q", want, back, err, in)
		}
	}
}

// depth is the deepest nesting of the JSON document v, by encoding/json's
// tokens.
func depth(t *testing.T, v []byte) int {
	dec := json.NewDecoder(bytes.NewReader(v))
	d, max := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return max
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			if d++; d > max {
				max = d
			}
		case json.Delim(']'), json.Delim('}'):
			d--
		}
	}
}

func TestShallow(t *testing.T) {
	nest := func(n int, inner string) string {
		return strings.Repeat(`{"a":[`, n/2) + strings.Repeat("[", n%2) + inner + strings.Repeat("]", n%2) + strings.Repeat("]}", n/2)
	}
	cases := map[string]bool{
		`1`:                        true,
		nest(MaxValueDepth, `1`):   true,
		nest(MaxValueDepth+1, `1`): false,
		// Brackets in strings do not nest, escaped quotes do not end them.
		nest(MaxValueDepth, `"[[[{{{\"[[["`):                    true,
		`["` + strings.Repeat("[", 200) + `"]`:                  true,
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000): false,
	}
	for in, want := range cases {
		if got := Shallow([]byte(in)); got != want {
			t.Errorf("Shallow(%.60q…, depth %d) = %v, want %v", in, depth(t, []byte(in)), got, want)
		}
		if want != (depth(t, []byte(in)) <= MaxValueDepth) {
			t.Errorf("case %.60q: depth %d disagrees with the expectation", in, depth(t, []byte(in)))
		}
	}
}

func FuzzShallow(f *testing.F) {
	for _, s := range []string{`[[1]]`, `{"a":{"b":[1,"]"]}}`, `"\"["`, strings.Repeat("[", 65) + strings.Repeat("]", 65)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		if !json.Valid(v) {
			return
		}
		if got, want := Shallow(v), depth(t, v) <= MaxValueDepth; got != want {
			t.Fatalf("Shallow(%q) = %v, encoding/json's depth %d", v, got, depth(t, v))
		}
	})
}
