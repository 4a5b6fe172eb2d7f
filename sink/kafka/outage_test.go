package kafka

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluiceio/sluice/sink"
)

// The broker goes away and comes back on the same port with its data:
// Writes fail transiently meanwhile, succeed after, and nothing written
// before is lost.
func TestBrokerOutageAndRestart(t *testing.T) {
	dir := t.TempDir()
	c1, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "events"), kfake.DataDir(dir), kfake.SyncWrites())
	if err != nil {
		t.Fatal(err)
	}
	addr := c1.ListenAddrs()[0]
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)

	set := metrics.NewSet()
	w := newWriter(t, addr, Options{
		WriteTimeout: 2 * time.Second, DialTimeout: time.Second, Metrics: set,
	})
	before := testMsgs("events", "before", 50, 10)
	mustWrite(t, w, before)

	c1.Close()
	for i := 0; i < 3; i++ {
		err := w.Write(context.Background(), testMsgs("events", "down", 5, 10))
		if !isTransient(err) {
			t.Fatalf("write while down: %v, want transient", err)
		}
		t.Logf("while down: %v (reason %s)", err, sink.Reason(err))
		switch r := sink.Reason(err); r {
		case ReasonNetwork, ReasonTimeout:
		default:
			t.Fatalf("write while down: reason %s (%v)", r, err)
		}
	}
	if v := metricValue(set, `sluice_sink_broker_up{sink="kafka"}`); v != "0" {
		t.Errorf("broker_up while down = %q", v)
	}

	c2, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir), kfake.SyncWrites())
	if err != nil {
		t.Fatalf("restart on port %d: %v", port, err)
	}
	t.Cleanup(c2.Close)

	after := testMsgs("events", "after", 50, 10)
	var last error
	for i := 0; ; i++ {
		if last = w.Write(context.Background(), after); last == nil {
			break
		}
		t.Logf("after restart, attempt %d: %v (reason %s)", i, last, sink.Reason(last))
		if !retryable(last) {
			t.Fatalf("write after restart: %v, want transient until it succeeds", last)
		}
		if i == 200 {
			t.Fatalf("never recovered: %v", last)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v := metricValue(set, `sluice_sink_broker_up{sink="kafka"}`); v != "1" {
		t.Errorf("broker_up after recovery = %q", v)
	}

	// A restart nobody wrote through: the pooled connections are stale.
	c2.Close()
	c3, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir), kfake.SyncWrites())
	if err != nil {
		t.Fatalf("second restart on port %d: %v", port, err)
	}
	t.Cleanup(c3.Close)
	again := testMsgs("events", "again", 20, 10)
	for i := 0; ; i++ {
		if last = w.Write(context.Background(), again); last == nil {
			break
		}
		t.Logf("after quiet restart, attempt %d: %v (reason %s)", i, last, sink.Reason(last))
		if !retryable(last) || i == 200 {
			t.Fatalf("write after quiet restart: %v", last)
		}
		time.Sleep(20 * time.Millisecond)
	}

	all := append(append(before, after...), again...)
	recs := byID(t, consume(t, addr, "events", len(all)))
	for _, m := range all {
		if _, ok := recs[m.ID]; !ok {
			t.Errorf("%s lost", m.ID)
		}
	}
}

// silentBroker accepts connections and never answers.
type silentBroker struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
}

func newSilentBroker(t *testing.T) *silentBroker {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentBroker{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			go io.Copy(io.Discard, c) //nolint:errcheck // drain until closed
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-s.done
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			c.Close()
		}
	})
	return s
}

func (s *silentBroker) addr() string { return s.ln.Addr().String() }

// A broker that accepts and never answers: Write returns a transient error
// on its own (WriteTimeout), no hang.
func TestSilentBrokerTimesOut(t *testing.T) {
	s := newSilentBroker(t)
	w := newWriter(t, s.addr(), Options{WriteTimeout: 300 * time.Millisecond, DialTimeout: 200 * time.Millisecond})
	for i := 0; i < 2; i++ {
		err := w.Write(context.Background(), testMsgs("t", "x", 3, 1))
		if !isTransient(err) || sink.Reason(err) != ReasonTimeout {
			t.Fatalf("write %d: %v (reason %s), want transient timeout", i, err, sink.Reason(err))
		}
	}
}

// Close aborts a blocked Write and returns when its context ends even
// though kafka-go still waits for a produce response, leaving no
// connection open.
func TestCloseAbortsBlockedWrite(t *testing.T) {
	c, addr := newCluster(t, kfake.SeedTopics(1, "t"))
	produced := make(chan struct{}, 1)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		select {
		case produced <- struct{}{}:
		default:
		}
		return nil, nil, true // never answer
	})
	w, err := New(Options{Brokers: []string{addr}, WriteTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- w.Write(context.Background(), testMsgs("t", "x", 1, 1)) }()
	<-produced
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("close: %v, want deadline exceeded (kafka-go still waiting)", err)
	}
	err = <-errc
	if !errors.Is(err, ErrClosed) || sink.IsPermanent(err) {
		t.Errorf("blocked write: %v, want transient ErrClosed", err)
	}
	if n := w.conns.open(); n != 0 {
		t.Errorf("%d connections open after Close", n)
	}
	if err := w.Write(context.Background(), testMsgs("t", "y", 1, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("write after close: %v", err)
	}
	if err := w.Close(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second close: %v, want the first result", err)
	}
}

// Close of a Writer blocked before any produce (no metadata yet).
func TestCloseWhileConnecting(t *testing.T) {
	s := newSilentBroker(t)
	w, err := New(Options{Brokers: []string{s.addr()}, WriteTimeout: time.Hour, DialTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- w.Write(context.Background(), testMsgs("t", "x", 1, 1)) }()
	for s.numConns() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = w.Close(ctx) // nil or deadline: only that it returns
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("blocked write: %v, want ErrClosed", err)
	}
	if n := w.conns.open(); n != 0 {
		t.Errorf("%d connections open after Close", n)
	}
}

func (s *silentBroker) numConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// The caller's cancellation ends a Write at once, transiently.
func TestWriteHonoursContext(t *testing.T) {
	s := newSilentBroker(t)
	w := newWriter(t, s.addr(), Options{WriteTimeout: time.Hour, DialTimeout: 500 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Write(ctx, testMsgs("t", "x", 1, 1)) }()
	for s.numConns() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) || !isTransient(err) || sink.Reason(err) != ReasonCanceled {
		t.Fatalf("got %v (reason %s)", err, sink.Reason(err))
	}
}
