package rabbitmq

import (
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluiceio/sluice/sink"
)

// KeyHeader is the header that carries the message key: AMQP has no key of
// its own. A message without a key (nil) has no such header; an empty key
// is an empty header value.
const KeyHeader = "sluice-key"

// publishing builds the AMQP message for m: persistent, the body = the
// value, the headers, sluice-id, sluice-key, message-id and timestamp.
//
// AMQP headers form a table, keyed by name: a name that m repeats becomes
// one header whose value is an array of its values, in order; the order
// of distinct names is not kept. Values are AMQP long strings (type 'S'),
// holding the bytes exactly. A header of m named sluice-id or sluice-key
// is kept as it is and the sink does not add its own (chained agents keep
// the first id).
func publishing(m *sink.Message) amqp.Publishing {
	h := make(amqp.Table, len(m.Headers)+2)
	for _, hd := range m.Headers {
		v := string(hd.Value)
		switch old := h[hd.Key].(type) {
		case nil:
			h[hd.Key] = v
		case string:
			h[hd.Key] = []any{old, v}
		case []any:
			h[hd.Key] = append(old, v)
		}
	}
	id := m.ID
	if v, ok := h[sink.IDHeader].(string); ok {
		id = v
	} else if _, ok := h[sink.IDHeader]; !ok && m.ID != "" {
		h[sink.IDHeader] = m.ID
	}
	if _, ok := h[KeyHeader]; !ok && m.Key != nil {
		h[KeyHeader] = string(m.Key)
	}
	p := amqp.Publishing{
		Headers:      h,
		DeliveryMode: amqp.Persistent,
		Body:         m.Value,
	}
	if len(id) <= maxShortstr {
		p.MessageId = id // a longer chained id travels in the sluice-id header only
	}
	if !m.Time.IsZero() {
		p.Timestamp = m.Time // AMQP keeps whole seconds
	}
	return p
}

// checkHeaders returns an error for a header name AMQP cannot carry.
func checkHeaders(m *sink.Message) error {
	for _, hd := range m.Headers {
		if len(hd.Key) > maxShortstr {
			return fmt.Errorf("rabbitmq: header name of %d bytes is longer than %d (%.40q...)", len(hd.Key), maxShortstr, hd.Key)
		}
	}
	return nil
}
