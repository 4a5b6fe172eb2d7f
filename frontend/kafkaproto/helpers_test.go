package kafkaproto

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sluiceio/sluice/agent"
	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/spool"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// funcSink is a sink made of functions: the only kind of fake used here.
type funcSink struct {
	write func(ctx context.Context, msgs []sink.Message) error
}

func (f funcSink) Write(ctx context.Context, msgs []sink.Message) error { return f.write(ctx, msgs) }
func (f funcSink) Close(context.Context) error                          { return nil }

// memSink records what the agent forwarded.
type memSink struct {
	mu  sync.Mutex
	got []sink.Message
	ch  chan struct{}
}

func newMemSink() *memSink { return &memSink{ch: make(chan struct{}, 1)} }

func (m *memSink) sink() sink.Sink {
	return funcSink{write: func(ctx context.Context, msgs []sink.Message) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, msg := range msgs {
			msg.Key = bytes.Clone(msg.Key)
			msg.Value = bytes.Clone(msg.Value)
			hs := make([]sink.Header, len(msg.Headers))
			for i, h := range msg.Headers {
				hs[i] = sink.Header{Key: h.Key, Value: bytes.Clone(h.Value)}
			}
			msg.Headers = hs
			m.got = append(m.got, msg)
		}
		select {
		case m.ch <- struct{}{}:
		default:
		}
		return nil
	}}
}

// wait returns the messages once there are at least n (fails after 30 s).
func (m *memSink) wait(t testing.TB, n int) []sink.Message {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		m.mu.Lock()
		got := append([]sink.Message(nil), m.got...)
		m.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-m.ch:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("sink has %d messages, want %d", len(got), n)
		}
	}
}

// drainTimeout is the agents' drain timeout (a backlog that cannot empty
// makes stopping take this long).
var drainTimeout = time.Second

// env is a running agent with the listener as its front-end.
type env struct {
	srv  *Server
	sink *memSink
	dir  string
	stop func() // stops the agent (drain); idempotent
	// ingest is the agent's HTTP ingest address.
	ingest string
}

// start runs an agent over a real spool in dir with a memSink for topics
// matching globs (default all) and the listener configured by o.
func start(t testing.TB, dir string, o Options, globs ...string) *env {
	t.Helper()
	ms := newMemSink()
	e := startWith(t, dir, o, ms.sink(), globs...)
	e.sink = ms
	return e
}

// startWith is start with sink s (e.sink is nil).
func startWith(t testing.TB, dir string, o Options, s sink.Sink, globs ...string) *env {
	t.Helper()
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	dl, err := spool.Open(filepath.Join(dir, "deadletter"), spool.Options{Logger: quiet(), FullPolicy: spool.DropOldest})
	if err != nil {
		t.Fatal(err)
	}
	o.Addr = "127.0.0.1:0"
	o.StateDir = filepath.Join(dir, "spool", "kafka")
	if o.Logger == nil {
		o.Logger = quiet()
	}
	srv, err := Listen(o)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Options{
		Spool: sp, DeadLetter: dl, Listen: "127.0.0.1:0", AdminListen: "-",
		Sinks:     []agent.SinkSpec{{Name: "mem", Sink: s, Topics: globs, RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond}},
		FrontEnds: []agent.FrontEnd{srv}, DrainTimeout: drainTimeout, Logger: quiet(),
	})
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("agent: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("agent did not stop")
			}
		})
	}
	t.Cleanup(stop)
	<-a.Ready()
	ingest, _ := a.Addrs()
	return &env{srv: srv, dir: dir, stop: stop, ingest: ingest}
}
