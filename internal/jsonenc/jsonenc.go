// Package jsonenc appends JSON strings, and message keys and headers that
// keep their bytes (key_b64, headers_b64), without allocating; shared by
// what writes messages as JSON by hand (the file/stdout and http sinks,
// the agent's queue pulls).
package jsonenc

import (
	"bytes"
	"encoding/json"
	"strconv"
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
// integers of more than 4,300 digits. A number must also be within a
// float64's range: encoding/json refuses to decode 1e400 into an any.
const MaxNumberLen = 1000

// Portable reports whether the message value v can be written into a JSON
// body as itself and read back by common readers: valid UTF-8 and one
// valid JSON document, nesting arrays and objects at most MaxValueDepth
// deep, with every number at most MaxNumberLen characters and within a
// float64's range.
func Portable(v []byte) bool {
	return utf8.Valid(v) && json.Valid(v) && withinLimits(v)
}

// withinLimits reports whether the valid JSON document v nests at most
// MaxValueDepth deep and has only numbers Portable takes.
func withinLimits(v []byte) bool {
	depth, inString, start := 0, false, -1
	for i := 0; i <= len(v); i++ {
		c := byte(0)
		if i < len(v) {
			c = v[i]
		}
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		// Outside strings, a number starts with '-' or a digit (the 'e'
		// of true and false starts nothing).
		if start < 0 && (c == '-' || '0' <= c && c <= '9') {
			start = i
		}
		if start >= 0 {
			if '0' <= c && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
				continue
			}
			if !numberWithinLimits(v[start:i]) {
				return false
			}
			start = -1
		}
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

// numberWithinLimits reports whether the JSON number n is at most
// MaxNumberLen characters and within a float64's range (only one with an
// exponent or over 308 digits can be out of it).
func numberWithinLimits(n []byte) bool {
	if len(n) > MaxNumberLen {
		return false
	}
	if len(n) <= 308 && !bytes.ContainsAny(n, "eE") {
		return true
	}
	_, err := strconv.ParseFloat(string(n), 64)
	return err == nil
}
