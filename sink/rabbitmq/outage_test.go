package rabbitmq

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/sinktest"
)

// proxy forwards TCP connections to the node; it can hold back what the
// node sends (confirms stay unseen) and cut every connection, so a test
// can lose the connection exactly while a Write waits for its confirms.
type proxy struct {
	ln     net.Listener
	target string
	hold   atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.hold.Store(false)
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(up, c); up.Close() }()
		go func() { defer p.wg.Done(); p.copyDown(c, up); c.Close() }()
	}
}

// copyDown copies node → client, pausing while hold is set.
func (p *proxy) copyDown(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for n > 0 && p.hold.Load() {
			time.Sleep(5 * time.Millisecond)
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cut closes every proxied connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) url() string { return "amqp://guest:guest@" + p.ln.Addr().String() + "/" }

// TestConnectionLostWhileConfirming: the connection drops while a Write
// waits for confirms the node already queued. The Write fails at once,
// transiently (network, not a timeout: no waiting out the deadline), so
// every unconfirmed message is sent again; the next Write reconnects and
// delivers. Nothing is lost; duplicates are allowed (the sluice-id tells).
func TestConnectionLostWhileConfirming(t *testing.T) {
	srv := node(t)
	srv.DeclareQueue(t, "lossq", nil)
	px := newProxy(t, srv.Addr())
	w := newWriter(t, Options{URL: px.url(), WriteTimeout: time.Minute, ReconnectMin: time.Millisecond, ReconnectMax: 10 * time.Millisecond})

	first := sinktest.Generate("first-", 10, 100)
	for i := range first {
		first[i].Topic = "lossq"
	}
	mustWrite(t, w, first)

	px.hold.Store(true)
	second := sinktest.Generate("second-", 50, 100)
	for i := range second {
		second[i].Topic = "lossq"
	}
	done := make(chan error, 1)
	go func() { done <- write(t, w, second) }()
	deadline := time.Now().Add(30 * time.Second)
	for srv.QueueLen(t, "lossq") < len(first)+len(second) {
		if time.Now().After(deadline) {
			t.Fatalf("the node did not get the second batch")
		}
		time.Sleep(20 * time.Millisecond)
	}
	px.cut()
	px.hold.Store(false)
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Write still waiting after the connection was cut")
	}
	for i, e := range batchErrs(t, err, len(second)) {
		expectReason(t, second[i].ID, e, ReasonNetwork, false)
	}
	writeUntil(t, w, second, 20)

	got := readIDs(t, srv, "lossq")
	for _, m := range append(first, second...) {
		if !slices.Contains(got, m.ID) {
			t.Fatalf("%s lost; queue holds %d messages", m.ID, len(got))
		}
	}
	if len(got) != len(first)+2*len(second) {
		t.Logf("queue holds %d messages for %d sent (the second batch twice expected)", len(got), len(first)+len(second))
	}
}

// TestBrokerClosesConnection: the broker closes the connection (an
// operator, a node shutdown: 320 CONNECTION_FORCED); the next Writes
// reconnect by themselves instead of failing with "channel/connection is
// not open" forever.
func TestBrokerClosesConnection(t *testing.T) {
	srv := node(t)
	srv.DeclareQueue(t, "forcedq", nil)
	w := newWriter(t, Options{ReconnectMin: time.Millisecond, ReconnectMax: 10 * time.Millisecond})
	mustWrite(t, w, []sink.Message{msg("forcedq", "f0", "x")})
	srv.CloseConnections(t)
	errs := writeUntil(t, w, []sink.Message{msg("forcedq", "f1", "y")}, 10)
	for _, err := range errs {
		if sink.IsPermanent(err) {
			t.Fatalf("a lost connection is not the message's fault: %v", err)
		}
	}
	if len(errs) > 1 {
		t.Fatalf("reconnecting took %d failed Writes: %v", len(errs), errs)
	}
	if got := readIDs(t, srv, "forcedq"); !slices.Equal(got, []string{"f0", "f1"}) {
		t.Fatalf("queue holds %v", got)
	}
}

// TestHungBroker: a broker that stops answering (paused: the connection
// stays open, nothing comes back) makes the confirm wait end at
// WriteTimeout with a transient error; a Write waiting on it returns when
// Close is called, and Close itself returns by its context, cutting the
// connection; once the broker answers again the next Write delivers.
func TestHungBroker(t *testing.T) {
	srv := node(t)
	srv.DeclareQueue(t, "hungq", nil)
	w := newWriter(t, Options{WriteTimeout: time.Second})
	mustWrite(t, w, []sink.Message{msg("hungq", "h0", "x")})
	patient, err := New(Options{URL: srv.URL(), WriteTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { patient.Close(context.Background()) })
	mustWrite(t, patient, []sink.Message{msg("hungq", "p0", "x")})

	srv.Pause(t)
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			srv.Resume(t)
		}
	})
	err = write(t, w, []sink.Message{msg("hungq", "h1", "y")})
	expectReason(t, "no confirm from a hung broker", err, ReasonTimeout, false)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want a deadline error: %v", err)
	}

	done := make(chan error, 1)
	go func() { done <- patient.Write(context.Background(), []sink.Message{msg("hungq", "p1", "y")}) }()
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := patient.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close on a hung broker: %v, want the context's deadline (connection cut)", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) || sink.IsPermanent(err) {
			t.Fatalf("Write aborted by Close: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Write still blocked after Close")
	}

	srv.Resume(t)
	resumed = true
	writeUntil(t, w, []sink.Message{msg("hungq", "h1", "y")}, 20)
	got := readIDs(t, srv, "hungq")
	if !slices.Contains(got, "h0") || !slices.Contains(got, "h1") {
		t.Fatalf("queue holds %v", got)
	}
}

// TestBlocked: under a memory alarm the broker blocks publishing
// connections (connection.blocked) and stops reading them. Writes fail
// transiently with reason blocked — promptly, not by hanging until the
// timeout — the blocked gauge says why, and once the alarm clears the same
// messages are delivered.
func TestBlocked(t *testing.T) {
	srv := node(t)
	srv.DeclareQueue(t, "blockedq", nil)
	set := metrics.NewSet()
	w := newWriter(t, Options{WriteTimeout: 20 * time.Second, Metrics: set, Name: "blk"})
	mustWrite(t, w, []sink.Message{msg("blockedq", "b0", "x")})

	srv.MemoryAlarm(t, true)
	alarm := true
	t.Cleanup(func() {
		if alarm {
			srv.MemoryAlarm(t, false)
		}
	})
	blocked := []sink.Message{msg("blockedq", "b1", "y"), msg("blockedq", "b2", "z")}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := write(t, w, blocked)
		if err == nil {
			t.Fatal("Write succeeded during a memory alarm")
		}
		if sink.Reason(err) == ReasonBlocked {
			break
		}
		if sink.IsPermanent(err) || time.Now().After(deadline) {
			t.Fatalf("during a memory alarm: %v (reason %s)", err, sink.Reason(err))
		}
	}
	if v := scrape(set, `sluice_sink_blocked{sink="blk"}`); v != 1 {
		t.Fatalf("sluice_sink_blocked = %v", v)
	}
	// While blocked, Writes fail without publishing.
	expectReason(t, "still blocked", write(t, w, blocked), ReasonBlocked, false)

	srv.MemoryAlarm(t, false)
	alarm = false
	writeUntil(t, w, blocked, 50)
	if v := scrape(set, `sluice_sink_blocked{sink="blk"}`); v != 0 {
		t.Fatalf("sluice_sink_blocked = %v after the alarm", v)
	}
	got := readIDs(t, srv, "blockedq")
	for _, id := range []string{"b0", "b1", "b2"} {
		if !slices.Contains(got, id) {
			t.Fatalf("%s lost: queue holds %v", id, got)
		}
	}
}

// TestBadCredentials: a refused login is transient (a credential rotation
// must not dead-letter the backlog) with reason auth and the auth gauge
// up; once the password is fixed the same messages go through.
func TestBadCredentials(t *testing.T) {
	srv := node(t)
	srv.DeclareQueue(t, "authq", nil)
	srv.AddUser(t, "rotated", "old-password")
	t.Cleanup(func() { srv.Ctl(t, "delete_user", "rotated") })
	set := metrics.NewSet()
	w := newWriter(t, Options{URL: srv.URLFor("rotated", "new-password"), Metrics: set, Name: "auth",
		ReconnectMin: time.Millisecond, ReconnectMax: 10 * time.Millisecond})
	m := []sink.Message{msg("authq", "a0", "x")}
	// RabbitMQ closes a connection whose login failed after 3 s: one try.
	expectReason(t, "wrong password", write(t, w, m), ReasonAuth, false)
	if v := scrape(set, `sluice_sink_auth_failing{sink="auth"}`); v != 1 {
		t.Fatalf("sluice_sink_auth_failing = %v", v)
	}

	srv.ChangePassword(t, "rotated", "new-password")
	writeUntil(t, w, m, 20)
	if v := scrape(set, `sluice_sink_auth_failing{sink="auth"}`); v != 0 {
		t.Fatalf("sluice_sink_auth_failing = %v after the fix", v)
	}

	// A user without permission on the vhost: transient too.
	srv.Ctl(t, "add_user", "noperm", "pw")
	t.Cleanup(func() { srv.Ctl(t, "delete_user", "noperm") })
	w2 := newWriter(t, Options{URL: srv.URLFor("noperm", "pw")})
	expectReason(t, "no access to the vhost", write(t, w2, m), ReasonAuth, false)

	if got := readIDs(t, srv, "authq"); !slices.Equal(got, []string{"a0"}) {
		t.Fatalf("queue holds %v", got)
	}
}
