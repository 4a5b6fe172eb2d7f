package artemis

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// clientLimit bounds each call of a Client: a liveness bound.
const clientLimit = 30 * time.Second

// Client is an AMQP 1.0 connection to the broker, independent of the code
// under test: it reads queues back and manages the broker through its
// management address (activemq.management), as Artemis's own console does.
type Client struct {
	Conn *amqp.Conn
	Sess *amqp.Session
}

// Dial connects as user (who needs the manage permission for Manage); the
// connection is closed when the test ends.
func (b *Broker) Dial(t testing.TB, user, password string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientLimit)
	defer cancel()
	conn, err := amqp.Dial(ctx, "amqp://"+b.Addr(), &amqp.ConnOptions{SASLType: amqp.SASLTypePlain(user, password)})
	if err != nil {
		t.Fatalf("artemis client: dial: %v", err)
	}
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		conn.Close()
		t.Fatalf("artemis client: session: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &Client{Conn: conn, Sess: sess}
}

// Manage invokes operation op of a management resource ("broker",
// "queue.<name>", "address.<name>") with args, the JSON array of its
// parameters, and returns the first element of the result (nil when the
// operation returns nothing) or the broker's error.
func (c *Client) Manage(t testing.TB, resource, op, args string) (any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientLimit)
	defer cancel()
	rcv, err := c.Sess.NewReceiver(ctx, "", &amqp.ReceiverOptions{DynamicAddress: true})
	if err != nil {
		t.Fatalf("artemis client: management receiver: %v", err)
	}
	defer rcv.Close(ctx)
	snd, err := c.Sess.NewSender(ctx, "activemq.management", nil)
	if err != nil {
		t.Fatalf("artemis client: management sender: %v", err)
	}
	defer snd.Close(ctx)
	reply := rcv.Address()
	err = snd.Send(ctx, &amqp.Message{
		Properties:            &amqp.MessageProperties{ReplyTo: &reply},
		ApplicationProperties: map[string]any{"_AMQ_ResourceName": resource, "_AMQ_OperationName": op},
		Value:                 args,
	}, nil)
	if err != nil {
		t.Fatalf("artemis client: management send: %v", err)
	}
	m, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatalf("artemis client: management reply: %v", err)
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
		return nil, fmt.Errorf("artemis management %s %s: %v", resource, op, first)
	}
	return first, nil
}

// Count is the number of messages in queue q (0 when it does not exist).
func (c *Client) Count(t testing.TB, q string) int {
	t.Helper()
	v, err := c.Manage(t, "queue."+q, "countMessages", "[]")
	if err != nil {
		return 0
	}
	switch n := v.(type) {
	case int64:
		return int(n)
	case float64:
		return int(n)
	}
	t.Fatalf("artemis client: countMessages(%s) = %T %v", q, v, v)
	return 0
}

// Receive consumes every message now in queue q, in queue order.
func (c *Client) Receive(t testing.TB, q string) []*amqp.Message {
	t.Helper()
	n := c.Count(t, q)
	if n == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), clientLimit)
	defer cancel()
	rcv, err := c.Sess.NewReceiver(ctx, q, &amqp.ReceiverOptions{Credit: int32(min(n, 1000)), SourceCapabilities: []string{"queue"}})
	if err != nil {
		t.Fatalf("artemis client: receiver %s: %v", q, err)
	}
	defer rcv.Close(ctx)
	out := make([]*amqp.Message, 0, n)
	for len(out) < n {
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			t.Fatalf("artemis client: receive %s: %d of %d: %v", q, len(out), n, err)
		}
		if err := rcv.AcceptMessage(ctx, m); err != nil {
			t.Fatalf("artemis client: accept: %v", err)
		}
		out = append(out, m)
	}
	return out
}
