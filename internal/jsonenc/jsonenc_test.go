package jsonenc

import (
	"bytes"
	"encoding/json"
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
