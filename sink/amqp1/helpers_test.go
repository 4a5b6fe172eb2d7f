package amqp1

import (
	"context"
	"encoding/json"
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

// client is an independent go-amqp connection to the broker, for reading
// back and managing it.
type client struct {
	conn *amqp.Conn
	sess *amqp.Session
}

func newClient(t testing.TB, b *artemis.Broker) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	conn, err := amqp.Dial(ctx, "amqp://"+b.Addr(), &amqp.ConnOptions{SASLType: amqp.SASLTypePlain(adminUser, adminPass)})
	if err != nil {
		t.Fatalf("client dial: %v", err)
	}
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatalf("client session: %v", err)
	}
	c := &client{conn: conn, sess: sess}
	t.Cleanup(func() { conn.Close() })
	return c
}

// manage invokes a management operation through the broker's management
// address and returns the first element of its JSON result (nil when the
// operation returned nothing). args is the JSON array of parameters.
func (c *client) manage(t testing.TB, resource, op, args string) (any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	rcv, err := c.sess.NewReceiver(ctx, "", &amqp.ReceiverOptions{DynamicAddress: true})
	if err != nil {
		t.Fatalf("management receiver: %v", err)
	}
	defer rcv.Close(ctx)
	snd, err := c.sess.NewSender(ctx, "activemq.management", nil)
	if err != nil {
		t.Fatalf("management sender: %v", err)
	}
	defer snd.Close(ctx)
	reply := rcv.Address()
	err = snd.Send(ctx, &amqp.Message{
		Properties:            &amqp.MessageProperties{ReplyTo: &reply},
		ApplicationProperties: map[string]any{"_AMQ_ResourceName": resource, "_AMQ_OperationName": op},
		Value:                 args,
	}, nil)
	if err != nil {
		t.Fatalf("management send: %v", err)
	}
	m, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatalf("management reply: %v", err)
	}
	_ = rcv.AcceptMessage(ctx, m)
	var first any
	switch v := m.Value.(type) {
	case []any:
		if len(v) > 0 {
			first = v[0]
		}
	case string:
		var l []any
		if json.Unmarshal([]byte(v), &l) == nil && len(l) > 0 {
			first = l[0]
		}
	}
	if ok, _ := m.ApplicationProperties["_AMQ_OperationSucceeded"].(bool); !ok {
		return nil, fmt.Errorf("management %s %s: %v", resource, op, first)
	}
	return first, nil
}

// count is the number of messages in queue q (0 when it does not exist).
func (c *client) count(t testing.TB, q string) int {
	t.Helper()
	v, err := c.manage(t, "queue."+q, "countMessages", "[]")
	if err != nil {
		return 0
	}
	switch n := v.(type) {
	case int64:
		return int(n)
	case float64:
		return int(n)
	}
	t.Fatalf("countMessages(%s) = %T %v", q, v, v)
	return 0
}

// receive consumes every message now in queue q, in queue order.
func (c *client) receive(t testing.TB, q string) []*amqp.Message {
	t.Helper()
	n := c.count(t, q)
	if n == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	rcv, err := c.sess.NewReceiver(ctx, q, &amqp.ReceiverOptions{Credit: int32(min(n, 1000)), SourceCapabilities: []string{"queue"}})
	if err != nil {
		t.Fatalf("receiver %s: %v", q, err)
	}
	defer rcv.Close(ctx)
	out := make([]*amqp.Message, 0, n)
	for len(out) < n {
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			t.Fatalf("receive %s: %d of %d: %v", q, len(out), n, err)
		}
		if err := rcv.AcceptMessage(ctx, m); err != nil {
			t.Fatalf("accept: %v", err)
		}
		out = append(out, m)
	}
	return out
}

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
