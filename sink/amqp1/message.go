package amqp1

import (
	"fmt"
	"unicode/utf8"

	amqp "github.com/Azure/go-amqp"

	"github.com/sluiceio/sluice/sink"
)

// KeyProperty is the application property that carries a message's key:
// a string when the key is valid UTF-8, else binary; absent for a nil key.
const KeyProperty = "sluice-key"

// encoder turns sink messages into AMQP messages. One AMQP message and its
// maps are reused for every message of a Write: go-amqp encodes a message
// into its own buffer before SendWithReceipt returns.
type encoder struct {
	msg   amqp.Message
	hdr   amqp.MessageHeader
	props amqp.MessageProperties
	app   map[string]any
	data  [][]byte
}

func newEncoder() *encoder {
	e := &encoder{app: make(map[string]any, 8), data: make([][]byte, 1)}
	e.hdr.Durable = true
	return e
}

// check reports why m cannot be carried as it is, or nil. The application
// properties section is a map: a repeated header name, or a header named
// like a property the sink sets itself, cannot be represented without
// altering the message.
func check(m *sink.Message) error {
	for i, h := range m.Headers {
		if h.Key == KeyProperty {
			return fmt.Errorf("amqp1: header %q is reserved for the message key", h.Key)
		}
		for _, prev := range m.Headers[:i] {
			if prev.Key == h.Key {
				return fmt.Errorf("amqp1: header %q repeated: application properties hold one value per name", h.Key)
			}
		}
	}
	return nil
}

// id is the sluice id sent upstream: an existing sluice-id header (chained
// agents keep the first id), else m.ID.
func id(m *sink.Message) string {
	for _, h := range m.Headers {
		if h.Key == sink.IDHeader {
			return string(h.Value)
		}
	}
	return m.ID
}

// encode fills the reused AMQP message from m (which check accepted).
func (e *encoder) encode(m *sink.Message) *amqp.Message {
	clear(e.app)
	for _, h := range m.Headers {
		e.app[h.Key] = propertyValue(h.Value)
	}
	sid := id(m)
	if sid != "" {
		e.app[sink.IDHeader] = sid
	}
	if m.Key != nil {
		e.app[KeyProperty] = propertyValue(m.Key)
	}
	e.props = amqp.MessageProperties{}
	if sid != "" {
		e.props.MessageID = sid
	}
	if !m.Time.IsZero() {
		t := m.Time
		e.props.CreationTime = &t
	}
	v := m.Value
	if v == nil {
		v = []byte{}
	}
	e.data[0] = v
	e.msg = amqp.Message{
		Header:                &e.hdr,
		Properties:            &e.props,
		ApplicationProperties: e.app,
		Data:                  e.data,
	}
	return &e.msg
}

// release drops the references to the last message's bytes.
func (e *encoder) release() {
	clear(e.app)
	e.data[0] = nil
	e.msg = amqp.Message{}
}

// propertyValue is an application property value for b: a string when b
// is valid UTF-8 (what JMS and most consumers read), else binary.
func propertyValue(b []byte) any {
	if utf8.Valid(b) {
		return string(b)
	}
	return append([]byte(nil), b...)
}

// PropertyBytes returns the bytes of an application property value as the
// sink sends them (string or binary); ok is false for other types.
func PropertyBytes(v any) (b []byte, ok bool) {
	switch x := v.(type) {
	case string:
		return []byte(x), true
	case []byte:
		return x, true
	}
	return nil, false
}
