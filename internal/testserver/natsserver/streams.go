package natsserver

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// opLimit bounds one admin operation; a liveness bound.
const opLimit = 30 * time.Second

// Connect opens an admin connection (no reconnects) that is closed when the
// test ends.
func (s *Server) Connect() *nats.Conn {
	s.t.Helper()
	nc, err := nats.Connect(s.adminURL(), s.adminOpts(nats.NoReconnect())...)
	if err != nil {
		s.t.Fatalf("natsserver: connect: %v", err)
	}
	s.t.Cleanup(nc.Close)
	return nc
}

// JetStream returns a JetStream context over a new admin connection that
// is closed when the test ends.
func (s *Server) JetStream() jetstream.JetStream {
	s.t.Helper()
	js, err := jetstream.New(s.Connect())
	if err != nil {
		s.t.Fatalf("natsserver: jetstream: %v", err)
	}
	return js
}

// withJS runs f with a JetStream context over an admin connection of its
// own, closed when f returns.
func (s *Server) withJS(f func(ctx context.Context, js jetstream.JetStream) error) error {
	nc, err := nats.Connect(s.adminURL(), s.adminOpts(nats.NoReconnect())...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), opLimit)
	defer cancel()
	return f(ctx, js)
}

// CreateStream creates (or updates) a stream. File storage unless cfg says
// otherwise.
func (s *Server) CreateStream(cfg jetstream.StreamConfig) {
	s.t.Helper()
	err := s.withJS(func(ctx context.Context, js jetstream.JetStream) error {
		_, err := js.CreateOrUpdateStream(ctx, cfg)
		return err
	})
	if err != nil {
		s.t.Fatalf("natsserver: create stream %s: %v", cfg.Name, err)
	}
}

// DeleteStream deletes a stream; a missing one is not an error.
func (s *Server) DeleteStream(name string) {
	s.t.Helper()
	err := s.withJS(func(ctx context.Context, js jetstream.JetStream) error {
		return js.DeleteStream(ctx, name)
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		s.t.Fatalf("natsserver: delete stream %s: %v", name, err)
	}
}

// StreamMsg is one message read back from a stream.
type StreamMsg struct {
	Sequence uint64
	Subject  string
	Header   nats.Header
	Data     []byte
}

// Read returns every message of stream name, from its first sequence to
// its last at the time of the call, in stream order, read with an ordered
// consumer. A stream that does not exist has no messages.
func (s *Server) Read(name string) []StreamMsg {
	s.t.Helper()
	var msgs []StreamMsg
	err := s.withJS(func(_ context.Context, js jetstream.JetStream) error {
		var err error
		msgs, err = ReadStream(js, name)
		return err
	})
	if err != nil {
		s.t.Fatalf("natsserver: read stream %s: %v", name, err)
	}
	return msgs
}

// ReadStream is Read over a caller's JetStream context.
func ReadStream(js jetstream.JetStream, name string) ([]StreamMsg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opLimit)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, err
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil, nil
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	var out []StreamMsg
	for {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return out, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return out, err
			}
			out = append(out, StreamMsg{Sequence: md.Sequence.Stream, Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
			if md.Sequence.Stream >= last {
				return out, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return out, err
		}
		if n == 0 && ctx.Err() != nil {
			return out, ctx.Err()
		}
	}
}
