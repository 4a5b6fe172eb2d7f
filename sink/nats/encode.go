package nats

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluiceio/sluice/sink"
)

// Header names the sink writes besides the message's own headers.
const (
	// KeyHeader carries the message key when NATS can carry it verbatim.
	KeyHeader = "sluice-key"
	// KeyB64Header carries the key in standard base64 otherwise.
	KeyB64Header = "sluice-key-b64"
	// B64Prefix marks a header of the message that is sent with its value
	// in standard base64 under the name B64Prefix+name: a value NATS cannot
	// carry verbatim, or a name that would be taken for one of sluice's or
	// NATS's own (see the package documentation).
	B64Prefix = "sluice-b64-"
	// MsgIDHeader is JetStream's de-duplication header; the sink sets it
	// to the sluice id.
	MsgIDHeader = jetstream.MsgIDHeader
)

// Errors of messages that cannot be sent as they are.
var (
	// ErrInvalidSubject: the rendered subject is not a valid NATS subject.
	ErrInvalidSubject = errors.New("nats: invalid subject")
	// ErrInvalidHeader: a header name NATS cannot carry.
	ErrInvalidHeader = errors.New("nats: invalid header name")
)

var b64 = base64.StdEncoding

// checkSubject checks a subject to publish to: valid UTF-8 of at most
// MaxSubjectBytes, tokens separated by '.', none empty, none a wildcard
// ("*" or ">"), no whitespace or control characters.
func checkSubject(s string) error {
	switch {
	case s == "":
		return errors.New("empty subject")
	case len(s) > MaxSubjectBytes:
		return fmt.Errorf("subject of %d bytes is longer than %d", len(s), MaxSubjectBytes)
	case !utf8.ValidString(s):
		return errors.New("subject is not valid UTF-8")
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			if c := s[i]; c <= ' ' || c == 0x7f {
				return fmt.Errorf("subject holds whitespace or control character %q", c)
			}
			continue
		}
		switch tok := s[start:i]; tok {
		case "":
			return errors.New("subject has an empty token (leading, trailing or double '.')")
		case "*", ">":
			return fmt.Errorf("subject has wildcard token %q", tok)
		}
		start = i + 1
	}
	return nil
}

// validHeaderName reports whether nats.go and the server accept n as a
// header name: printable ASCII without `"(),/:;<=>?@[\]{}`.
func validHeaderName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c < 33 || c > 126 || strings.IndexByte(`"()/,:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// verbatim reports whether NATS carries v exactly as a header value:
// valid UTF-8, no control characters (nats.go turns CR and LF into
// spaces) and no leading or trailing space (nats.go trims it).
func verbatim(v []byte) bool {
	if !utf8.Valid(v) {
		return false
	}
	for _, c := range v {
		if c < ' ' || c == 0x7f {
			return false
		}
	}
	return len(v) == 0 || v[0] != ' ' && v[len(v)-1] != ' '
}

// reservedName reports whether a message header named n must be escaped
// so that it is not taken for sluice's key header, for an escaped header,
// or for a NATS header the server acts on (Nats-Rollup, Nats-Expected-*,
// Nats-TTL, ...).
func reservedName(n string) bool {
	return strings.EqualFold(n, KeyHeader) || strings.EqualFold(n, KeyB64Header) ||
		hasPrefixFold(n, B64Prefix) || hasPrefixFold(n, "nats-")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// encodeHeaders builds the NATS headers of m: its own headers (the
// sluice-id header, if any, is replaced by m.ID), the key, sluice-id and
// Nats-Msg-Id.
func encodeHeaders(m *sink.Message) (natsgo.Header, error) {
	h := make(natsgo.Header, len(m.Headers)+4)
	// A name is escaped as a whole when one of its values needs it, so
	// that its values keep their order.
	var escape map[string]bool
	for _, hd := range m.Headers {
		if strings.EqualFold(hd.Key, sink.IDHeader) {
			continue
		}
		if !validHeaderName(hd.Key) {
			return nil, fmt.Errorf("%w %q: NATS header names are printable ASCII without spaces or any of \"(),/:;<=>?@[\\]{}", ErrInvalidHeader, hd.Key)
		}
		if !verbatim(hd.Value) || reservedName(hd.Key) {
			if escape == nil {
				escape = make(map[string]bool)
			}
			escape[hd.Key] = true
		}
	}
	for _, hd := range m.Headers {
		switch {
		case strings.EqualFold(hd.Key, sink.IDHeader):
		case escape[hd.Key]:
			n := B64Prefix + hd.Key
			h[n] = append(h[n], b64.EncodeToString(hd.Value))
		default:
			h[hd.Key] = append(h[hd.Key], string(hd.Value))
		}
	}
	if m.Key != nil {
		if verbatim(m.Key) {
			h[KeyHeader] = []string{string(m.Key)}
		} else {
			h[KeyB64Header] = []string{b64.EncodeToString(m.Key)}
		}
	}
	if m.ID != "" {
		id := m.ID
		if verbatim([]byte(id)) {
			h[sink.IDHeader] = []string{id}
		} else {
			id = b64.EncodeToString([]byte(id))
			h[B64Prefix+sink.IDHeader] = []string{id}
		}
		h[MsgIDHeader] = []string{id}
	}
	return h, nil
}

// Decoded is what DecodeHeaders recovers from a message's NATS headers.
type Decoded struct {
	// ID is the sluice id ("" when the message carries none).
	ID string
	// Key is the message key; nil when the message had none.
	Key []byte
	// Headers are the message's own headers, sorted by name; the values of
	// one name keep their order. NATS keeps no order between names.
	Headers []sink.Header
}

// DecodeHeaders undoes the sink's header encoding for a consumer: it
// returns the sluice id, the key and the message's own headers from h.
// Headers NATS or the server set (Nats-*) are left out.
func DecodeHeaders(h natsgo.Header) (Decoded, error) {
	var d Decoded
	for _, n := range slices.Sorted(maps.Keys(h)) {
		vs := h[n]
		switch {
		case len(vs) == 0, hasPrefixFold(n, "nats-"):
		case strings.EqualFold(n, sink.IDHeader):
			d.ID = vs[0]
		case strings.EqualFold(n, KeyHeader):
			d.Key = []byte(vs[0])
		case strings.EqualFold(n, KeyB64Header):
			k, err := b64.DecodeString(vs[0])
			if err != nil {
				return d, fmt.Errorf("nats: header %s: %w", n, err)
			}
			d.Key = k
		case hasPrefixFold(n, B64Prefix):
			name := n[len(B64Prefix):]
			for _, v := range vs {
				b, err := b64.DecodeString(v)
				if err != nil {
					return d, fmt.Errorf("nats: header %s: %w", n, err)
				}
				if strings.EqualFold(name, sink.IDHeader) {
					d.ID = string(b)
					continue
				}
				d.Headers = append(d.Headers, sink.Header{Key: name, Value: b})
			}
		default:
			for _, v := range vs {
				d.Headers = append(d.Headers, sink.Header{Key: n, Value: []byte(v)})
			}
		}
	}
	slices.SortStableFunc(d.Headers, func(a, b sink.Header) int { return strings.Compare(a.Key, b.Key) })
	return d, nil
}
