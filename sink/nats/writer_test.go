package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluiceio/sluice/internal/testserver/natsserver"
	"github.com/sluiceio/sluice/sink"
)

// TestOnTheWire checks what a NATS consumer sees: the subject, the payload
// bytes, sluice-id and Nats-Msg-Id, the key, and a message header named
// like one the server acts on arriving escaped (the stream is not rolled
// up).
func TestOnTheWire(t *testing.T) {
	srv := natsserver.Start(t, natsserver.Options{})
	stream, prefix := newStream(t, srv, func(c *jetstream.StreamConfig) { c.AllowRollup = true })
	w := newWriter(t, Options{URL: srv.URL(), Subject: prefix + ".{topic}"})
	m1 := msg("id-1", "orders", `{"n":1}`)
	m1.Key = []byte("customer-7")
	m1.Headers = []sink.Header{{Key: "trace", Value: []byte("t-1")}, {Key: "Nats-Rollup", Value: []byte("all")}}
	m2 := msg("id-2", "orders", "second")
	mustWrite(t, w, []sink.Message{m1, m2})

	got := srv.Read(stream)
	if len(got) != 2 {
		t.Fatalf("stream has %d messages, want 2 (a rollup would leave 1)", len(got))
	}
	h := got[0].Header
	for name, want := range map[string]string{
		"sluice-id": "id-1", "Nats-Msg-Id": "id-1", "sluice-key": "customer-7", "trace": "t-1",
		"sluice-b64-Nats-Rollup": "YWxs", "Nats-Rollup": "",
	} {
		if h.Get(name) != want {
			t.Errorf("header %s = %q, want %q (all: %v)", name, h.Get(name), want, h)
		}
	}
	if got[0].Subject != prefix+".orders" || string(got[0].Data) != `{"n":1}` {
		t.Fatalf("subject %q data %q", got[0].Subject, got[0].Data)
	}
	if got[1].Header.Get("sluice-key") != "" || got[1].Header.Get("sluice-key-b64") != "" {
		t.Fatalf("a message without key has key headers: %v", got[1].Header)
	}
}

// TestSubjectTemplate: {key} in the subject; a key that makes an invalid
// subject fails that message alone, permanently.
func TestSubjectTemplate(t *testing.T) {
	srv := natsserver.Start(t, natsserver.Options{})
	stream, prefix := newStream(t, srv, nil)
	w := newWriter(t, Options{URL: srv.URL(), Subject: prefix + ".{topic}.{key}"})
	for i, bad := range [][]byte{[]byte("a.b."), []byte("a b"), nil, []byte("*")} {
		good := msg(fmt.Sprint("g-", i), "orders", "v") // distinct ids: one id is stored once
		good.Key = []byte("customer-7")
		b := msg(fmt.Sprint("b-", i), "orders", "v")
		b.Key = bad
		err := w.Write(context.Background(), []sink.Message{good, b})
		var be *sink.BatchError
		if !errors.As(err, &be) || be.Errs[0] != nil || !sink.IsPermanent(be.Errs[1]) || sink.Reason(be.Errs[1]) != ReasonInvalidSubject {
			t.Fatalf("key %q: %v", bad, err)
		}
	}
	got := srv.Read(stream)
	if len(got) != 4 || got[0].Subject != prefix+".orders.customer-7" {
		t.Fatalf("stream holds %d messages, first on %q", len(got), got[0].Subject)
	}

	if _, err := New(Options{URL: srv.URL(), Subject: "a..b"}); err == nil {
		t.Fatal("New accepted a static subject with an empty token")
	}
	if _, err := New(Options{URL: srv.URL(), Subject: "{topic}.{partition}"}); err == nil {
		t.Fatal("New accepted an unknown placeholder")
	}
}

// TestRetryIsDeduplicated: a batch sent again (a retry after a lost
// PubAck) is stored once within the stream's duplicate window, because
// Nats-Msg-Id is the sluice id; after the window it is stored again.
func TestRetryIsDeduplicated(t *testing.T) {
	srv := natsserver.Start(t, natsserver.Options{})
	stream, prefix := newStream(t, srv, func(c *jetstream.StreamConfig) { c.Duplicates = 500 * time.Millisecond })
	w := newWriter(t, Options{URL: srv.URL(), Subject: prefix + ".{topic}"})
	batch := []sink.Message{msg("d-1", "t", "a"), msg("d-2", "t", "b")}
	mustWrite(t, w, batch)
	mustWrite(t, w, batch)
	if got := srv.Read(stream); len(got) != 2 {
		t.Fatalf("after a resend within the window the stream has %d messages, want 2", len(got))
	}
	time.Sleep(700 * time.Millisecond) // past the window
	mustWrite(t, w, batch)
	if got := srv.Read(stream); len(got) != 4 {
		t.Fatalf("after a resend past the window the stream has %d messages, want 4", len(got))
	}
}

// TestCorePublishIsNotDelivery: a plain subscriber on the subject (no
// stream) receives the message, but that is not a PubAck: the Write must
// fail, as a core publish would have "succeeded".
func TestCorePublishIsNotDelivery(t *testing.T) {
	srv := natsserver.Start(t, natsserver.Options{})
	nc := srv.Connect()
	received := make(chan *natsgo.Msg, 10)
	sub, err := nc.ChanSubscribe("core.>", received)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	nc.Flush()
	w := newWriter(t, Options{URL: srv.URL(), Subject: "core.{topic}", AckTimeout: 300 * time.Millisecond})
	err = w.Write(context.Background(), []sink.Message{msg("c-1", "t", "v")})
	if err == nil || sink.IsPermanent(err) || sink.Reason(err) != ReasonTimeout {
		t.Fatalf("Write to a subject without a stream but with a subscriber: %v (reason %s)", err, sink.Reason(err))
	}
	select {
	case m := <-received:
		if m.Reply == "" {
			t.Fatal("published without a reply subject: not a JetStream publish")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the subscriber got nothing")
	}
}

// TestAckTimeoutResolves: against a hung server every future resolves
// with a timeout after AckTimeout, and a Write blocked there honours its
// ctx and Close.
func TestAckTimeoutResolves(t *testing.T) {
	srv := natsserver.Start(t, natsserver.Options{})
	_, prefix := newStream(t, srv, nil)
	w := newWriter(t, Options{URL: srv.URL(), Subject: prefix + ".{topic}", AckTimeout: 300 * time.Millisecond})
	mustWrite(t, w, []sink.Message{msg("h-0", "t", "v")}) // connected
	srv.Pause()
	defer srv.Resume()
	err := w.Write(context.Background(), []sink.Message{msg("h-1", "t", "v"), msg("h-2", "t", "v")})
	if err == nil || sink.Reason(err) != ReasonTimeout || sink.IsPermanent(err) {
		t.Fatalf("Write to a hung server: %v (reason %s)", err, sink.Reason(err))
	}

	w2 := newWriter(t, Options{URL: srv.URL(), Subject: prefix + ".{topic}", AckTimeout: time.Hour})
	srv.Resume()
	mustWrite(t, w2, []sink.Message{msg("h-3", "t", "v")})
	srv.Pause()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w2.Write(ctx, []sink.Message{msg("h-4", "t", "v")}) }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := waitDone(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Write: %v", err)
	}
	go func() { done <- w2.Write(context.Background(), []sink.Message{msg("h-5", "t", "v")}) }()
	time.Sleep(100 * time.Millisecond)
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	_ = w2.Close(cctx)
	if err := waitDone(t, done); !errors.Is(err, ErrClosed) || sink.Reason(err) != ReasonClosed {
		t.Fatalf("Write when Close was called: %v", err)
	}
}

func waitDone(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("Write still blocked")
		return nil
	}
}

// TestMaxPendingBounds: at most MaxPending messages await their PubAck at
// once. A responder standing in for the stream holds its acks until it
// has MaxPending unanswered messages, then answers them all: with a
// larger window it would see more.
func TestMaxPendingBounds(t *testing.T) {
	srv := natsserver.Start(t, natsserver.Options{})
	nc := srv.Connect()
	const window, n = 5, 40
	var (
		mu       sync.Mutex
		held     []*natsgo.Msg
		maxHeld  int
		seq      int
		received int
	)
	sub, err := nc.Subscribe("fake.>", func(m *natsgo.Msg) {
		mu.Lock()
		defer mu.Unlock()
		received++
		held = append(held, m)
		maxHeld = max(maxHeld, len(held))
		if len(held) == window {
			for _, h := range held {
				seq++
				_ = h.Respond(fmt.Appendf(nil, `{"stream":"FAKE","seq":%d}`, seq))
			}
			held = held[:0]
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	nc.Flush()
	w := newWriter(t, Options{URL: srv.URL(), Subject: "fake.{topic}", MaxPending: window, AckTimeout: 10 * time.Second})
	var msgs []sink.Message
	for i := range n {
		msgs = append(msgs, msg(fmt.Sprint("m-", i), "t", "v"))
	}
	mustWrite(t, w, msgs)
	mu.Lock()
	defer mu.Unlock()
	if received != n || maxHeld != window {
		t.Fatalf("responder received %d, held at most %d unanswered; want %d and %d", received, maxHeld, n, window)
	}
}

// TestServerDown: while the server is down Write fails at once,
// transiently, with reason network; nothing published then is reported
// delivered; after a restart on the same store everything arrives.
func TestServerDown(t *testing.T) {
	srv := natsserver.Start(t, natsserver.Options{})
	stream, prefix := newStream(t, srv, nil)
	w := newWriter(t, Options{URL: srv.URL(), Subject: prefix + ".{topic}", ReconnectWait: 50 * time.Millisecond})
	mustWrite(t, w, []sink.Message{msg("s-0", "t", "v")})
	srv.Kill()
	batch := []sink.Message{msg("s-1", "t", "v"), msg("s-2", "t", "v")}
	for i := 0; i < 3; i++ {
		err := w.Write(context.Background(), batch)
		var be *sink.BatchError
		if err == nil || sink.IsPermanent(err) || errors.As(err, &be) || sink.Reason(err) != ReasonNetwork {
			t.Fatalf("Write with the server down: %v (reason %s)", err, sink.Reason(err))
		}
	}
	srv.Restart()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := w.Write(context.Background(), batch)
		if err == nil {
			break
		}
		if sink.IsPermanent(err) || time.Now().After(deadline) {
			t.Fatalf("Write after the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := readBack(t, srv, stream, prefix)
	if len(got) != 3 || got[0].ID != "s-0" || got[1].ID != "s-1" || got[2].ID != "s-2" {
		t.Fatalf("stream after the restart: %d messages %v", len(got), got)
	}
}
