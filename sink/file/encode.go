package file

import (
	"encoding/base64"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sluiceio/sluice/internal/jsonenc"
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
	dst = jsonenc.AppendString(dst, m.ID)
	dst = append(dst, `,"topic":`...)
	dst = jsonenc.AppendString(dst, m.Topic)

	dst = jsonenc.AppendKey(dst, m.Key)
	dst = jsonenc.AppendHeaders(dst, m.Headers)

	switch {
	case embeddable(m.Value):
		dst = append(dst, `,"value":`...)
		dst = append(dst, m.Value...)
	case utf8.Valid(m.Value):
		dst = append(dst, `,"value":`...)
		dst = jsonenc.AppendString(dst, m.Value)
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

// embeddable reports whether v can be copied into the line verbatim as the
// "value" field: a valid UTF-8 JSON document that is not a JSON string (so
// that a string-typed "value" always means "these are the text bytes"),
// without surrounding whitespace (decoders drop it), without CR or LF
// (they would end the NDJSON line), within common readers' limits
// (jsonenc.Portable).
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
		return isNumber(v) && jsonenc.Portable(v)
	case c != '{' && c != '[':
		return false
	}
	for _, c := range v {
		if c == '\n' || c == '\r' {
			return false
		}
	}
	return jsonenc.Portable(v)
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
