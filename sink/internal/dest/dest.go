// Package dest renders a sink's destination name (RabbitMQ exchange and
// routing key, AMQP 1.0 address, NATS subject) from a template with the
// placeholders {topic} and {key}. Every sink that lets the operator shape
// its destination uses this one syntax, so that one sentence documents all
// of them:
//
//	t, err := dest.Parse("orders.{topic}")  // SLUICE_<NAME>_SUBJECT
//	subject := t.Render(m.Topic, m.Key)     // "orders.clicks"
//
// {topic} is the message's topic; {key} its key as bytes (empty for a
// message without a key). Anything else in braces is refused at start-up.
package dest

import (
	"errors"
	"fmt"
	"strings"
)

// Template is a parsed destination template. The zero value renders "".
type Template struct {
	parts []part
	src   string
}

type part struct {
	lit   string
	field byte // 0 literal, 't' topic, 'k' key
}

// ErrSyntax is wrapped by every Parse error.
var ErrSyntax = errors.New("dest: bad template")

// Parse reads a template. Placeholders are {topic} and {key}; a brace that
// does not open one of them is an error.
func Parse(s string) (Template, error) {
	t := Template{src: s}
	rest := s
	for rest != "" {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			t.parts = append(t.parts, part{lit: rest})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: rest[:i]})
		}
		rest = rest[i:]
		switch {
		case strings.HasPrefix(rest, "{topic}"):
			t.parts = append(t.parts, part{field: 't'})
			rest = rest[len("{topic}"):]
		case strings.HasPrefix(rest, "{key}"):
			t.parts = append(t.parts, part{field: 'k'})
			rest = rest[len("{key}"):]
		default:
			end := strings.IndexByte(rest, '}')
			if rest[0] == '{' && end > 0 {
				return Template{}, fmt.Errorf("%w: unknown placeholder %s in %q (use {topic} or {key})", ErrSyntax, rest[:end+1], s)
			}
			return Template{}, fmt.Errorf("%w: unmatched %q in %q (placeholders are {topic} and {key})", ErrSyntax, rest[:1], s)
		}
	}
	return t, nil
}

// MustParse is Parse for templates known to be valid; it panics otherwise.
func MustParse(s string) Template {
	t, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return t
}

// Render fills the placeholders.
func (t Template) Render(topic string, key []byte) string {
	if len(t.parts) == 1 {
		switch p := t.parts[0]; p.field {
		case 0:
			return p.lit
		case 't':
			return topic
		}
	}
	var b strings.Builder
	for _, p := range t.parts {
		switch p.field {
		case 0:
			b.WriteString(p.lit)
		case 't':
			b.WriteString(topic)
		case 'k':
			b.Write(key)
		}
	}
	return b.String()
}

// UsesKey reports whether the rendered name depends on the message key.
func (t Template) UsesKey() bool {
	for _, p := range t.parts {
		if p.field == 'k' {
			return true
		}
	}
	return false
}

// Static reports whether the template has no placeholder, and its text.
func (t Template) Static() (string, bool) {
	for _, p := range t.parts {
		if p.field != 0 {
			return "", false
		}
	}
	return t.src, true
}

// String is the template as written.
func (t Template) String() string { return t.src }
