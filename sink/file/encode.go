package file

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sluiceio/sluice/sink"
)

// AppendBatch appends every message of msgs to dst as one NDJSON line each
// (see the package documentation for the format) and returns the extended
// buffer.
func AppendBatch(dst []byte, msgs []sink.Message) []byte {
	for i := range msgs {
		dst = AppendRecord(dst, &msgs[i])
	}
	return dst
}

// AppendRecord appends m to dst as one JSON object terminated by '\n' and
// returns the extended buffer. The output never contains another '\n' or
// '\r' byte and is always valid UTF-8.
func AppendRecord(dst []byte, m *sink.Message) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, m.ID)
	dst = append(dst, `,"topic":`...)
	dst = appendString(dst, m.Topic)

	if m.Key != nil {
		if utf8.Valid(m.Key) {
			dst = append(dst, `,"key":`...)
			dst = appendString(dst, m.Key)
		} else {
			dst = append(dst, `,"key_b64":"`...)
			dst = base64.StdEncoding.AppendEncode(dst, m.Key)
			dst = append(dst, '"')
		}
	}

	if len(m.Headers) > 0 {
		dst = appendHeaders(dst, m.Headers)
	}

	switch {
	case embeddable(m.Value):
		dst = append(dst, `,"value":`...)
		dst = append(dst, m.Value...)
	case utf8.Valid(m.Value):
		dst = append(dst, `,"value":`...)
		dst = appendString(dst, m.Value)
	default:
		dst = append(dst, `,"value_b64":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, m.Value)
		dst = append(dst, '"')
	}

	dst = append(dst, `,"timestamp":"`...)
	dst = m.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')

	if m.Partition != sink.NoPartition {
		dst = append(dst, `,"partition":`...)
		dst = strconv.AppendInt(dst, int64(m.Partition), 10)
	}
	return append(dst, '}', '\n')
}

// appendHeaders writes "headers" when every value is valid UTF-8, otherwise
// "headers_b64" with every value base64-encoded, so that one object always
// holds all headers in their original order.
func appendHeaders(dst []byte, hs []sink.Header) []byte {
	b64 := false
	for i := range hs {
		if !utf8.Valid(hs[i].Value) {
			b64 = true
			break
		}
	}
	if b64 {
		dst = append(dst, `,"headers_b64":{`...)
	} else {
		dst = append(dst, `,"headers":{`...)
	}
	for i := range hs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, hs[i].Key)
		dst = append(dst, ':')
		if b64 {
			dst = append(dst, '"')
			dst = base64.StdEncoding.AppendEncode(dst, hs[i].Value)
			dst = append(dst, '"')
		} else {
			dst = appendString(dst, hs[i].Value)
		}
	}
	return append(dst, '}')
}

// embeddable reports whether v can be copied into the line verbatim as the
// "value" field: a valid UTF-8 JSON document that is not a JSON string (so
// that a string-typed "value" always means "these are the text bytes"),
// without surrounding whitespace (decoders drop it) and without CR or LF
// (they would end the NDJSON line).
func embeddable(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	switch v[0] {
	case '"', ' ', '\t', '\n', '\r':
		return false
	}
	switch v[len(v)-1] {
	case ' ', '\t', '\n', '\r':
		return false
	}
	// Decide cheaply where the first byte allows it: json.Valid allocates
	// an error for every invalid input, and most text is rejected here.
	switch c := v[0]; {
	case c == 't':
		return string(v) == "true"
	case c == 'f':
		return string(v) == "false"
	case c == 'n':
		return string(v) == "null"
	case c == '-' || '0' <= c && c <= '9':
		return isNumber(v)
	case c != '{' && c != '[':
		return false
	}
	for _, c := range v {
		if c == '\n' || c == '\r' {
			return false
		}
	}
	return utf8.Valid(v) && json.Valid(v)
}

// isNumber reports whether v is exactly one JSON number:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isNumber(v []byte) bool {
	i := 0
	digits := func() int {
		start := i
		for i < len(v) && '0' <= v[i] && v[i] <= '9' {
			i++
		}
		return i - start
	}
	if i < len(v) && v[i] == '-' {
		i++
	}
	if i < len(v) && v[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(v) && v[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(v)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a quoted JSON string. Control characters, '"',
// '\\', U+2028 and U+2029 are escaped; each byte of an invalid UTF-8
// sequence becomes U+FFFD (as encoding/json does).
func appendString[S string | []byte](dst []byte, s S) []byte {
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
