// Package jsonenc appends JSON strings, and message keys and headers that
// keep their bytes (key_b64, headers_b64), without allocating; shared by
// what writes messages as JSON by hand (the file/stdout and http sinks,
// the agent's queue pulls).
package jsonenc

import (
	"encoding/json"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// AppendString appends s as a quoted JSON string. Control characters, '"',
// '\\', U+2028 and U+2029 are escaped; each byte of an invalid UTF-8
// sequence becomes U+FFFD (as encoding/json does).
func AppendString[S string | []byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(string(s[i:]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// MaxValueDepth is how deeply a message value may nest arrays and objects
// to be written into a JSON body as itself ("value"); a deeper one goes
// the other way (value_b64, or a JSON string in the file sink). Readers
// limit nesting (Ruby's JSON to 100, Python's to its recursion limit of
// about 1,000, Go's to 10,000) and the body around a value adds levels of
// its own: a value past a reader's limit would make the whole body, its
// batch-mates included, unreadable.
const MaxValueDepth = 64

// MaxNumberLen is how many characters a number in a message value may take
// for the value to be written as itself, for the same reason: Jackson
// refuses longer numbers by default (1,000 characters), Python's json
// integers of more than 4,300 digits.
const MaxNumberLen = 1000

// Portable reports whether the message value v can be written into a JSON
// body as itself and read back by common readers: valid UTF-8 and one
// valid JSON document, nesting arrays and objects at most MaxValueDepth
// deep, with no number longer than MaxNumberLen characters.
func Portable(v []byte) bool {
	return utf8.Valid(v) && json.Valid(v) && withinLimits(v)
}

// withinLimits reports whether the valid JSON document v nests at most
// MaxValueDepth deep and has no number longer than MaxNumberLen.
func withinLimits(v []byte) bool {
	if len(v) <= 2*MaxValueDepth+1 { // deeper takes two bytes a level
		return true
	}
	depth, inString, run := 0, false, 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		// Outside strings, these runs are numbers (true and false add a
		// lone 'e').
		if '0' <= c && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			if run++; run > MaxNumberLen {
				return false
			}
			continue
		}
		run = 0
		switch c {
		case '"':
			inString = true
		case '[', '{':
			if depth++; depth > MaxValueDepth {
				return false
			}
		case ']', '}':
			depth--
		}
	}
	return true
}
