package amqp1

import (
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/testserver/artemis"
	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/sinktest"
)

// caps: an empty key is kept apart from a nil one (a sluice-key property
// "" or none); creation-time has millisecond precision; queues keep the
// order of each address, and the harness reads one topic after the other.
var caps = sinktest.Caps{EmptyKey: true, TimePrecision: time.Millisecond, OrderPerKey: true}

func startBroker(t *testing.T, o artemis.Options) *artemis.Broker {
	t.Helper()
	if o.Users == nil {
		o.Users = map[string]string{adminUser: adminPass}
	}
	b := artemis.Start(t, o)
	t.Logf("artemis %s up in %v", artemis.Version, b.StartupTime.Round(time.Millisecond))
	return b
}

// conformance runs sinktest against the broker: every sink gets its own
// address prefix, so subtests never see each other's messages.
func conformance(t *testing.T, b *artemis.Broker) {
	c := newClient(t, b)
	var (
		prefix string
		got    []sink.Message
	)
	sinktest.Run(t, sinktest.Harness{
		New: func(t *testing.T) sink.Sink {
			if strings.HasSuffix(t.Name(), "/Batch") {
				// Variety holds a message with a repeated header name,
				// which application properties cannot carry; TestVariety
				// writes the same batch and checks that the rest arrives
				// byte for byte and that one is reported Permanent.
				t.Skip("application properties cannot carry a repeated header: see Variety")
			}
			prefix, got = unique("conf")+".", nil
			return newWriter(t, Options{URL: b.URL(adminUser, adminPass), Address: prefix + "{topic}", WriteTimeout: 5 * time.Second})
		},
		Read: func(t *testing.T) []sink.Message {
			got = append(got, c.readTopics(t, prefix, sinktest.TopicA, sinktest.TopicB)...)
			return got
		},
		Stall: func(t *testing.T) func() { return b.Pause(t) },
		Caps:  caps,
	})
}
