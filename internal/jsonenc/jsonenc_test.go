package jsonenc

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
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

// limits is the deepest nesting of the JSON document v and its longest
// number, by encoding/json's tokens.
func limits(t *testing.T, v []byte) (depth, number int) {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	d := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return depth, number
		}
		switch tok := tok.(type) {
		case json.Delim:
			switch tok {
			case '[', '{':
				if d++; d > depth {
					depth = d
				}
			case ']', '}':
				d--
			}
		case json.Number:
			number = max(number, len(tok))
			if _, err := strconv.ParseFloat(string(tok), 64); err != nil {
				number = math.MaxInt // out of a float64's range
			}
		}
	}
}

func within(t *testing.T, v []byte) bool {
	d, n := limits(t, v)
	return d <= MaxValueDepth && n <= MaxNumberLen
}

func TestPortable(t *testing.T) {
	nest := func(n int, inner string) string {
		return strings.Repeat(`{"a":[`, n/2) + strings.Repeat("[", n%2) + inner + strings.Repeat("]", n%2) + strings.Repeat("]}", n/2)
	}
	long := func(n int) string { return "1" + strings.Repeat("0", n-1) }
	cases := map[string]bool{
		`1`:                        true,
		nest(MaxValueDepth, `1`):   true,
		nest(MaxValueDepth+1, `1`): false,
		// Brackets in strings do not nest, escaped quotes do not end them.
		nest(MaxValueDepth, `"[[[{{{\"[[["`):                    true,
		`["` + strings.Repeat("[", 200) + `"]`:                  true,
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000): false,
		// Numbers: as long as a reader takes (Jackson 1,000 characters,
		// Python's int 4,300 digits), in strings any length.
		"0." + long(MaxNumberLen-2):                      true,
		"0." + long(MaxNumberLen-1):                      false,
		"-0." + long(MaxNumberLen-3):                     true,
		"-0." + long(MaxNumberLen-2):                     false,
		"[1," + long(5001) + "]":                         false,
		`{"n":` + long(200) + `.5e-` + long(800) + `}`:   false,
		`{"n":1.5e-` + long(3) + `}`:                     true,
		`["` + long(5001) + `"]`:                         true,
		`[true,false,` + long(MaxNumberLen-1) + `,true]`: false, // 1e998: out of a float64's range
		`[true,false,` + long(308) + `,true]`:            true,
		long(309):                                        true, // 1e308
		long(310):                                        false,
		`1e400`:                                          false,
		`[-1E+400]`:                                      false,
		`{"a":[1,2.5e308]}`:                              false,
		`1e-400`:                                         true, // 0 to a float64, not an error
		`[1e308,-1.7976931348623157e308]`:                true,
		"\"" + strings.Repeat("é", 3000) + "\"":          true,
	}
	for in, want := range cases {
		if got := Portable([]byte(in)); got != want {
			d, n := limits(t, []byte(in))
			t.Errorf("Portable(%.60q…, depth %d, number %d) = %v, want %v", in, d, n, got, want)
		}
		if want != within(t, []byte(in)) {
			t.Errorf("case %.60q: encoding/json's tokens disagree with the expectation", in)
		}
	}
	for _, in := range []string{"", "[", "\xff", "[1,]", `"\xff"`} {
		if Portable([]byte(in)) {
			t.Errorf("Portable(%q): not valid JSON or UTF-8, but portable", in)
		}
	}
}

func FuzzPortable(f *testing.F) {
	for _, s := range []string{`[[1]]`, `{"a":{"b":[1,"]"]}}`, `"\"["`, strings.Repeat("[", 65) + strings.Repeat("]", 65),
		"[" + strings.Repeat("9", 1001) + "]", `[true,1e5,-0.5E+3]`, `[1e400]`, `-1e-400`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		if !utf8.Valid(v) || !json.Valid(v) {
			if Portable(v) {
				t.Fatalf("Portable(%q): not valid, but portable", v)
			}
			return
		}
		if got, want := Portable(v), within(t, v); got != want {
			d, n := limits(t, v)
			t.Fatalf("Portable(%q) = %v, encoding/json's depth %d, longest number %d", v, got, d, n)
		}
	})
}
