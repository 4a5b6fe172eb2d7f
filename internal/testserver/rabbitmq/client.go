package rabbitmq

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// readLimit bounds how long ReadQueue waits for the messages a queue
// reported: a liveness bound.
const readLimit = time.Minute

// Dial opens an AMQP connection as guest, closed when the test ends.
func (s *Server) Dial(t testing.TB) *amqp.Connection {
	t.Helper()
	c, err := amqp.DialConfig(s.URL(), amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		t.Fatalf("dial %s: %v", s.Node, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// withChannel runs f on a fresh channel of a fresh connection.
func (s *Server) withChannel(t testing.TB, f func(ch *amqp.Channel) error) {
	t.Helper()
	c, err := amqp.DialConfig(s.URL(), amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		t.Fatalf("dial %s: %v", s.Node, err)
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := f(ch); err != nil {
		t.Fatal(err)
	}
}

// DeclareQueue deletes the queue name if it exists and declares it anew,
// durable and empty, with args (x-max-length, x-overflow, x-queue-type...).
func (s *Server) DeclareQueue(t testing.TB, name string, args amqp.Table) {
	t.Helper()
	s.withChannel(t, func(ch *amqp.Channel) error {
		if _, err := ch.QueueDelete(name, false, false, false); err != nil {
			return err
		}
		_, err := ch.QueueDeclare(name, true, false, false, false, args)
		return err
	})
}

// SyncTopology makes what was declared so far (queues, exchanges,
// bindings) durable on the node's disk now: RabbitMQ writes its metadata
// log lazily, and a node killed a moment after a declaration can come back
// without the queue (and answer NO_ROUTE), which no sink can help. Tests
// that kill the node call it after their setup.
func (s *Server) SyncTopology(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := s.ctl(ctx, "eval", "mnesia:sync_log()."); err != nil {
		t.Fatalf("sync the node's metadata log: %v (%s)", err, out)
	}
}

// DeleteQueue deletes a queue (and its messages) if it exists.
func (s *Server) DeleteQueue(t testing.TB, name string) {
	t.Helper()
	s.withChannel(t, func(ch *amqp.Channel) error {
		_, err := ch.QueueDelete(name, false, false, false)
		return err
	})
}

// DeclareExchange declares a durable exchange of kind and binds each queue
// to it with the binding key key.
func (s *Server) DeclareExchange(t testing.TB, name, kind, key string, queues ...string) {
	t.Helper()
	s.withChannel(t, func(ch *amqp.Channel) error {
		if err := ch.ExchangeDeclare(name, kind, true, false, false, false, nil); err != nil {
			return err
		}
		for _, q := range queues {
			if err := ch.QueueBind(q, key, name, false, nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteExchange deletes an exchange if it exists.
func (s *Server) DeleteExchange(t testing.TB, name string) {
	t.Helper()
	s.withChannel(t, func(ch *amqp.Channel) error { return ch.ExchangeDelete(name, false, false) })
}

// QueueLen returns the number of ready messages in a queue.
func (s *Server) QueueLen(t testing.TB, name string) int {
	t.Helper()
	var n int
	s.withChannel(t, func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		n = q.Messages
		return err
	})
	return n
}

// ReadQueue consumes and acknowledges every message the queue holds now,
// in queue order, and returns them.
func (s *Server) ReadQueue(t testing.TB, name string) []amqp.Delivery {
	t.Helper()
	var out []amqp.Delivery
	s.withChannel(t, func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		if err != nil || q.Messages == 0 {
			return err
		}
		if err := ch.Qos(1000, 0, false); err != nil {
			return err
		}
		ds, err := ch.Consume(name, "", false, true, false, false, nil)
		if err != nil {
			return err
		}
		timeout := time.After(readLimit)
		for len(out) < q.Messages {
			select {
			case d, ok := <-ds:
				if !ok {
					t.Fatalf("queue %s: consumer closed after %d of %d messages", name, len(out), q.Messages)
				}
				if err := d.Ack(false); err != nil {
					return err
				}
				out = append(out, d)
			case <-timeout:
				t.Fatalf("queue %s: read %d of %d messages in %v", name, len(out), q.Messages, readLimit)
			}
		}
		return nil
	})
	return out
}
