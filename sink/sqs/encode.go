package sqs

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sluiceio/sluice/sink"
)

// Message attributes sluice sets itself. Header names equal to one of them
// (but sluice-id) make the headers travel packed in AttrHeaders.
const (
	AttrID       = sink.IDHeader     // the sluice id
	AttrTopic    = "sluice-topic"    // the sluice topic
	AttrKey      = "sluice-key"      // the key: String when it is valid text, else Binary; absent for none
	AttrEncoding = "sluice-encoding" // how the body holds the value: absent = as is
	AttrHeaders  = "sluice-headers"  // all headers as JSON, when they cannot be attributes of their own

	// EncodingBase64: the body is the value in standard padded base64 (the
	// value is not text SQS accepts: invalid UTF-8 or characters outside
	// #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF).
	EncodingBase64 = "base64"
	// EncodingEmpty: the value is empty; the body is the placeholder
	// EmptyBody (SQS refuses an empty body).
	EncodingEmpty = "empty"
	// EmptyBody is the body of a message whose value is empty.
	EmptyBody = "-"
)

const (
	typeString = "String"
	typeBinary = "Binary"
)

// validText reports whether s is text SQS accepts in a body or a String
// attribute: valid UTF-8 of the XML 1.0 characters #x9 | #xA | #xD |
// #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF.
func validText(b []byte) bool {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return false
		}
		if r >= 0xD800 && r <= 0xDFFF || r == 0xFFFE || r == 0xFFFF {
			return false
		}
		i += n
	}
	return true
}

// validAttrName is SQS's rule for message attribute names: up to 256 of
// A-Z a-z 0-9 _ - ., not starting with "AWS." or "Amazon." (any case),
// no leading or trailing period, no two periods in a row.
func validAttrName(s string) bool {
	if s == "" || len(s) > 256 || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	l := strings.ToLower(s)
	if strings.HasPrefix(l, "aws.") || strings.HasPrefix(l, "amazon.") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// ValidGroupID reports whether s can be a MessageGroupId or a
// MessageDeduplicationId: 1 to 128 of A-Z a-z 0-9 and ASCII punctuation.
func ValidGroupID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// hashedID is the form of a key or id that is not a valid group or
// deduplication id: "sha256-" and the hex SHA-256 of its bytes (71
// characters).
func hashedID(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256-" + hex.EncodeToString(h[:])
}

// packedHeader is one header in AttrHeaders.
type packedHeader struct {
	Name     string `json:"name"`
	Value    string `json:"value,omitempty"`
	ValueB64 string `json:"value_b64,omitempty"`
}

// entry is a message encoded for SendMessageBatch, with its size as SQS
// counts it.
type entry struct {
	e    types.SendMessageBatchRequestEntry
	size int
	// group is the MessageGroupId on FIFO queues.
	group string
}

// encode turns m into an entry. An error is about m alone (Permanent).
func (c *config) encode(m *sink.Message) (entry, error) {
	var en entry
	attrs := make(map[string]types.MessageAttributeValue, 4)
	size := 0
	put := func(name, typ string, s string, b []byte) {
		v := types.MessageAttributeValue{DataType: aws.String(typ)}
		if typ == typeString {
			v.StringValue = aws.String(s)
			size += len(name) + len(typ) + len(s)
		} else {
			v.BinaryValue = b
			size += len(name) + len(typ) + len(b)
		}
		attrs[name] = v
	}

	id := m.ID
	for _, h := range m.Headers {
		if id == "" && h.Key == sink.IDHeader {
			id = string(h.Value)
		}
	}
	if id != "" {
		if !validText([]byte(id)) {
			return en, sink.Permanent(sink.WithReason(ReasonInvalid, fmt.Errorf("sqs: sluice id %q is not valid SQS text", id)))
		}
		put(AttrID, typeString, id, nil)
	}
	put(AttrTopic, typeString, m.Topic, nil)
	if len(m.Key) > 0 {
		if validText(m.Key) {
			put(AttrKey, typeString, string(m.Key), nil)
		} else {
			put(AttrKey, typeBinary, "", m.Key)
		}
	}
	var body string
	switch {
	case len(m.Value) == 0:
		body = EmptyBody
		put(AttrEncoding, typeString, EncodingEmpty, nil)
	case validText(m.Value) || c.rawBodies:
		body = string(m.Value)
	default:
		body = base64.StdEncoding.EncodeToString(m.Value)
		put(AttrEncoding, typeString, EncodingBase64, nil)
	}
	size += len(body)

	if err := c.encodeHeaders(m, len(attrs), put); err != nil {
		return en, err
	}
	en.size = size
	if size > c.RequestBytes {
		return en, sink.Permanent(sink.WithReason(ReasonTooLarge, fmt.Errorf(
			"sqs: message of %d bytes as SQS counts them (body %d, attributes %d) exceeds the request budget of %d bytes",
			size, len(body), size-len(body), c.RequestBytes)))
	}
	en.e = types.SendMessageBatchRequestEntry{MessageBody: aws.String(body), MessageAttributes: attrs}
	if c.fifo {
		switch {
		case len(m.Key) == 0:
			en.group = c.GroupID
		case ValidGroupID(string(m.Key)):
			en.group = string(m.Key)
		default:
			en.group = hashedID(m.Key)
		}
		en.e.MessageGroupId = aws.String(en.group)
		dedup := id
		if !ValidGroupID(dedup) {
			dedup = hashedID([]byte(id))
		}
		en.e.MessageDeduplicationId = aws.String(dedup)
	}
	return en, nil
}

// encodeHeaders adds m's headers as attributes of their own when they all
// fit SQS's rules, else all of them packed in AttrHeaders. A header named
// sluice-id is not sent: AttrID carries the id.
func (c *config) encodeHeaders(m *sink.Message, used int, put func(name, typ, s string, b []byte)) error {
	n := 0
	native := true
	seen := make(map[string]bool, len(m.Headers))
	for _, h := range m.Headers {
		if h.Key == sink.IDHeader {
			continue
		}
		n++
		l := strings.ToLower(h.Key)
		switch {
		case !validAttrName(h.Key), seen[l], len(h.Value) == 0,
			l == AttrTopic, l == AttrKey, l == AttrEncoding, l == AttrHeaders:
			native = false
		}
		seen[l] = true
	}
	if n == 0 {
		return nil
	}
	if native && used+n <= MaxAttributes {
		for _, h := range m.Headers {
			switch {
			case h.Key == sink.IDHeader:
			case validText(h.Value):
				put(h.Key, typeString, string(h.Value), nil)
			default:
				put(h.Key, typeBinary, "", h.Value)
			}
		}
		return nil
	}
	packed := make([]packedHeader, 0, n)
	for _, h := range m.Headers {
		if h.Key == sink.IDHeader {
			continue
		}
		if !utf8.ValidString(h.Key) {
			return sink.Permanent(sink.WithReason(ReasonBadHeader, fmt.Errorf("sqs: header name %q is not valid UTF-8", h.Key)))
		}
		p := packedHeader{Name: h.Key}
		if validText(h.Value) {
			p.Value = string(h.Value)
		} else {
			p.ValueB64 = base64.StdEncoding.EncodeToString(h.Value)
		}
		packed = append(packed, p)
	}
	js, err := json.Marshal(packed)
	if err != nil {
		return sink.Permanent(sink.WithReason(ReasonBadHeader, fmt.Errorf("sqs: encode headers: %w", err)))
	}
	put(AttrHeaders, typeString, string(js), nil)
	return nil
}
