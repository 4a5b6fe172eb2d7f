package httpsink

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/sluiceio/sluice/internal/jsonenc"
	"github.com/sluiceio/sluice/sink"
)

// Reasons for messages the batch format cannot carry (per-message
// Permanent errors in a *sink.BatchError).
const (
	ReasonNotUTF8   = "not_utf8"   // key, header or other string field is not valid UTF-8
	ReasonBadHeader = "bad_header" // repeated or empty header name
)

// checkMessage returns a per-message Permanent error when m cannot be
// written in the /v1/messages format without losing bytes, nil otherwise.
func checkMessage(m *sink.Message) error {
	switch {
	case !utf8.ValidString(m.Topic):
		return unrepresentable(ReasonNotUTF8, "topic is not valid UTF-8")
	case !utf8.ValidString(m.ID):
		return unrepresentable(ReasonNotUTF8, "id is not valid UTF-8")
	case m.Key != nil && !utf8.Valid(m.Key):
		return unrepresentable(ReasonNotUTF8, "key is not valid UTF-8 (the batch format carries keys as JSON strings)")
	}
	for i, h := range m.Headers {
		switch {
		case skipHeader(h.Key):
			continue
		case h.Key == "":
			return unrepresentable(ReasonBadHeader, "empty header name")
		case !utf8.ValidString(h.Key):
			return unrepresentable(ReasonNotUTF8, "header name is not valid UTF-8")
		case !utf8.Valid(h.Value):
			return unrepresentable(ReasonNotUTF8, fmt.Sprintf("header %q: value is not valid UTF-8 (the batch format carries header values as JSON strings)", h.Key))
		}
		for _, prev := range m.Headers[:i] {
			if prev.Key == h.Key {
				return unrepresentable(ReasonBadHeader, fmt.Sprintf("header %q is repeated (the batch format carries headers as a JSON object)", h.Key))
			}
		}
	}
	return nil
}

func unrepresentable(reason, msg string) error {
	return sink.Permanent(sink.WithReason(reason, errors.New("httpsink: message not sent: "+msg)))
}

// skipHeader reports whether a header is left out of the batch: the
// sluice-id travels in the "id" field, and a receiving sluice rejects it as
// a header.
func skipHeader(name string) bool { return strings.EqualFold(name, sink.IDHeader) }

// appendBatch appends the /v1/messages body holding msgs in order, leaving
// out msgs[i] when skip[i] != nil. skip may be nil.
func appendBatch(b []byte, msgs []sink.Message, skip []error) []byte {
	b = append(b, `{"messages":[`...)
	first := true
	for i := range msgs {
		if skip != nil && skip[i] != nil {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendMessage(b, &msgs[i])
	}
	return append(b, "]}"...)
}

// appendMessage appends one message object. Fields: topic, key (absent for
// a nil key), value or value_b64, headers (absent when none), id (absent
// when empty). checkMessage must have accepted m.
func appendMessage(b []byte, m *sink.Message) []byte {
	b = append(b, `{"topic":`...)
	b = jsonenc.AppendString(b, m.Topic)
	if m.Key != nil {
		b = append(b, `,"key":`...)
		b = jsonenc.AppendString(b, m.Key)
	}
	if rawJSON(m.Value) {
		b = append(b, `,"value":`...)
		b = append(b, m.Value...)
	} else {
		b = append(b, `,"value_b64":"`...)
		b = base64.StdEncoding.AppendEncode(b, m.Value)
		b = append(b, '"')
	}
	n := 0
	for _, h := range m.Headers {
		if skipHeader(h.Key) {
			continue
		}
		if n == 0 {
			b = append(b, `,"headers":{`...)
		} else {
			b = append(b, ',')
		}
		n++
		b = jsonenc.AppendString(b, h.Key)
		b = append(b, ':')
		b = jsonenc.AppendString(b, h.Value)
	}
	if n > 0 {
		b = append(b, '}')
	}
	if m.ID != "" {
		b = append(b, `,"id":`...)
		b = jsonenc.AppendString(b, m.ID)
	}
	return append(b, '}')
}

// rawJSON reports whether v can be embedded as the "value" member and read
// back byte for byte: one JSON document, valid UTF-8, with no leading or
// trailing whitespace (a decoder drops it), within common readers' limits
// (jsonenc.Portable). Anything else goes as value_b64.
func rawJSON(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	// Cheap checks of the first and last byte turn away most text and
	// binary values before json.Valid, which allocates an error for each
	// value it rejects.
	first, last := v[0], v[len(v)-1]
	switch {
	case first == '{':
		if last != '}' {
			return false
		}
	case first == '[':
		if last != ']' {
			return false
		}
	case first == '"':
		if last != '"' || len(v) < 2 {
			return false
		}
	case first == '-' || first >= '0' && first <= '9':
		if last < '0' || last > '9' {
			return false
		}
	case first == 't' || first == 'f' || first == 'n':
		return string(v) == "true" || string(v) == "false" || string(v) == "null"
	default:
		return false
	}
	return jsonenc.Portable(v)
}
