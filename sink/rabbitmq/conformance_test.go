package rabbitmq

import (
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/sinktest"
)

// TestConformance runs the sink contract against the real node: the
// default exchange and routing key = topic, so each topic is a durable
// queue; Read consumes both queues. RabbitMQ keeps order per queue (here
// per topic), which is more than per key. Stall pauses the node (SIGSTOP):
// connections stay open and nothing answers.
func TestConformance(t *testing.T) {
	srv := node(t)
	sinktest.Run(t, sinktest.Harness{
		New: func(t *testing.T) sink.Sink {
			srv.DeclareQueue(t, sinktest.TopicA, nil)
			srv.DeclareQueue(t, sinktest.TopicB, nil)
			w, err := New(Options{URL: srv.URL(), WriteTimeout: 20 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			return w
		},
		Read: func(t *testing.T) []sink.Message {
			var out []sink.Message
			for _, q := range []string{sinktest.TopicA, sinktest.TopicB} {
				for _, d := range srv.ReadQueue(t, q) {
					out = append(out, fromDelivery(q, d))
				}
			}
			return out
		},
		Stall: func(t *testing.T) func() {
			srv.Pause(t)
			return func() { srv.Resume(t) }
		},
		Caps: sinktest.Caps{EmptyKey: true, TimePrecision: time.Second, OrderPerKey: true},
	})
}
