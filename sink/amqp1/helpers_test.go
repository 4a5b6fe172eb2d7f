package amqp1

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/sluiceio/sluice/internal/testserver/artemis"
	"github.com/sluiceio/sluice/sink"
)

// Credentials of the broker's admin user in these tests.
const (
	adminUser = "admin"
	adminPass = "admin-pw"
)

// waitLimit bounds waits for the broker: a liveness bound, not a speed claim.
const waitLimit = 30 * time.Second

var uniq atomic.Int64

// unique returns a name no other test of this process uses.
func unique(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e6, uniq.Add(1))
}

// client reads back and manages the broker on a connection of its own.
type client struct{ *artemis.Client }

func newClient(t testing.TB, b *artemis.Broker) *client {
	t.Helper()
	return &client{b.Dial(t, adminUser, adminPass)}
}

func (c *client) manage(t testing.TB, resource, op, args string) (any, error) {
	t.Helper()
	return c.Manage(t, resource, op, args)
}

func (c *client) receive(t testing.TB, q string) []*amqp.Message { t.Helper(); return c.Receive(t, q) }

// toSink maps a received message back to what the sink was given: topic
// from the address (without prefix), key and headers from the
// application properties (headers sorted by name: the section is a map).
func toSink(t testing.TB, m *amqp.Message, topic string) sink.Message {
	t.Helper()
	out := sink.Message{Topic: topic, Value: m.GetData(), Partition: sink.NoPartition}
	if m.Properties != nil && m.Properties.CreationTime != nil {
		out.Time = *m.Properties.CreationTime
	}
	var names []string
	for k := range m.ApplicationProperties {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		b, ok := PropertyBytes(m.ApplicationProperties[k])
		if !ok {
			t.Fatalf("property %s has type %T", k, m.ApplicationProperties[k])
		}
		switch k {
		case sink.IDHeader:
			out.ID = string(b)
			if m.Properties == nil || m.Properties.MessageID != out.ID {
				t.Fatalf("message-id %v, sluice-id %q", m.Properties.MessageID, out.ID)
			}
		case KeyProperty:
			out.Key = b
		default:
			out.Headers = append(out.Headers, sink.Header{Key: k, Value: b})
		}
	}
	if m.Header == nil || !m.Header.Durable {
		t.Fatalf("message %s is not durable", out.ID)
	}
	return out
}

// readTopics consumes the queues prefix+topic for each topic and maps them
// back, topic by topic.
func (c *client) readTopics(t testing.TB, prefix string, topics ...string) []sink.Message {
	t.Helper()
	var out []sink.Message
	for _, tp := range topics {
		for _, m := range c.receive(t, prefix+tp) {
			out = append(out, toSink(t, m, tp))
		}
	}
	return out
}

func newWriter(t testing.TB, o Options) *Writer {
	t.Helper()
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		_ = w.Close(ctx)
	})
	return w
}

func write(t testing.TB, w *Writer, msgs []sink.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := w.Write(ctx, msgs); err != nil {
		t.Fatalf("Write(%d): %v (reason %s)", len(msgs), err, sink.Reason(err))
	}
}

// msg is a message for topic with value v and key k ("" = no key).
func msg(id, topic, k, v string) sink.Message {
	m := sink.Message{ID: id, Topic: topic, Value: []byte(v), Time: time.Now(), Partition: sink.NoPartition}
	if k != "" {
		m.Key = []byte(k)
	}
	return m
}

func hasAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
