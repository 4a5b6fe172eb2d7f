package nats

import (
	"sync"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/testserver/natsserver"
	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/sinktest"
)

// TestConformance runs the sink conformance suite against a real
// nats-server, each version the tests have. Every sink the suite builds
// gets its own stream; Stall pauses the server process (SIGSTOP), so that
// the connection stays up and nothing is answered.
func TestConformance(t *testing.T) {
	for version, bin := range servers(t) {
		t.Run(version, func(t *testing.T) {
			srv := natsserver.Start(t, natsserver.Options{Binary: bin})
			var stream, prefix string
			sinktest.Run(t, sinktest.Harness{
				New: func(t *testing.T) sink.Sink {
					stream, prefix = newStream(t, srv, nil)
					w, err := New(Options{URL: srv.URL(), Subject: prefix + ".{topic}", AckTimeout: time.Minute})
					if err != nil {
						t.Fatal(err)
					}
					return w
				},
				Read: func(t *testing.T) []sink.Message { return readBack(t, srv, stream, prefix) },
				Stall: func(t *testing.T) func() {
					srv.Pause()
					var once sync.Once
					return func() { once.Do(srv.Resume) }
				},
				// One stream, one connection: total order. Headers travel
				// as a map.
				Caps: sinktest.Caps{EmptyKey: true, UnorderedHeaders: true},
			})
		})
	}
}
