package rabbitmq

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluiceio/sluice/sink"
)

// TestNackIsFailure: a queue that refuses messages (x-max-length with
// x-overflow=reject-publish answers basic.nack) never yields a nil Write;
// the refused messages are retried (transient: the queue is full, not the
// message at fault), their batch-mates are delivered.
func TestNackIsFailure(t *testing.T) {
	srv := node(t)
	srv.DeclareQueue(t, "nackq", amqp.Table{"x-max-length": int32(2), "x-overflow": "reject-publish"})
	w := newWriter(t, Options{})
	msgs := []sink.Message{msg("nackq", "n0", "a"), msg("nackq", "n1", "b"), msg("nackq", "n2", "c"), msg("nackq", "n3", "d")}
	errs := batchErrs(t, write(t, w, msgs), len(msgs))
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("the first two fit the queue: %v", errs)
	}
	for _, err := range errs[2:] {
		expectReason(t, "message over the queue's length", err, ReasonNacked, false)
	}
	if got := readIDs(t, srv, "nackq"); !slices.Equal(got, []string{"n0", "n1"}) {
		t.Fatalf("queue holds %v", got)
	}
	mustWrite(t, w, msgs[2:]) // drained: the retry goes through
	if got := readIDs(t, srv, "nackq"); !slices.Equal(got, []string{"n2", "n3"}) {
		t.Fatalf("queue holds %v", got)
	}
}

// TestUnroutable: a mandatory message no queue takes comes back
// (basic.return NO_ROUTE) and is not a success: within the grace it is
// retried (the queue may be being created), its batch-mates are delivered,
// and once the queue exists it goes through.
func TestUnroutable(t *testing.T) {
	srv := node(t)
	srv.DeclareQueue(t, "routed", nil)
	srv.DeleteQueue(t, "notyet")
	t.Cleanup(func() { srv.DeleteQueue(t, "notyet") })
	w := newWriter(t, Options{UnroutableGrace: time.Hour})
	msgs := []sink.Message{msg("routed", "r0", "a"), msg("notyet", "u0", "b"), msg("routed", "r1", "c")}
	errs := batchErrs(t, write(t, w, msgs), len(msgs))
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("routable batch-mates not delivered: %v", errs)
	}
	expectReason(t, "unroutable within the grace", errs[1], ReasonUnroutable, false)
	if !strings.Contains(errs[1].Error(), "NO_ROUTE") {
		t.Fatalf("error does not say why: %v", errs[1])
	}

	srv.DeclareQueue(t, "notyet", nil)
	mustWrite(t, w, msgs[1:2])
	if got := readIDs(t, srv, "notyet"); !slices.Equal(got, []string{"u0"}) {
		t.Fatalf("queue holds %v", got)
	}
	if got := readIDs(t, srv, "routed"); !slices.Equal(got, []string{"r0", "r1"}) {
		t.Fatalf("queue holds %v", got)
	}
}

// TestUnroutableGrace: the grace runs from the first return for the
// route; past it the message fails permanently (dead-lettered); a delivery
// to the route resets it. Without a grace, the first return is permanent.
func TestUnroutableGrace(t *testing.T) {
	srv := node(t)
	srv.DeleteQueue(t, "graceq")
	t.Cleanup(func() { srv.DeleteQueue(t, "graceq") })
	var (
		mu  sync.Mutex
		now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	w := newWriter(t, Options{UnroutableGrace: time.Minute, Now: clock})
	m := []sink.Message{msg("graceq", "g0", "x")}
	expectReason(t, "first return", one(t, write(t, w, m)), ReasonUnroutable, false)
	advance(59 * time.Second)
	expectReason(t, "within the grace", one(t, write(t, w, m)), ReasonUnroutable, false)
	advance(2 * time.Second)
	expectReason(t, "past the grace", one(t, write(t, w, m)), ReasonUnroutable, true)

	srv.DeclareQueue(t, "graceq", nil)
	mustWrite(t, w, m) // resets the grace
	srv.DeleteQueue(t, "graceq")
	expectReason(t, "after a delivery the grace starts again", one(t, write(t, w, m)), ReasonUnroutable, false)

	w0 := newWriter(t, Options{UnroutableGrace: -1})
	expectReason(t, "no grace", one(t, write(t, w0, m)), ReasonUnroutable, true)
}

// TestNoExchange: an exchange that does not exist is found out before
// publishing (a publish to it would close the channel under the
// batch-mates): transient within the grace, then permanent; an exchange
// deleted after it was seen fails the batch transiently and is checked
// again.
func TestNoExchange(t *testing.T) {
	srv := node(t)
	srv.DeclareQueue(t, "exq", nil)
	srv.DeleteExchange(t, "sluice-ex-a")
	t.Cleanup(func() { srv.DeleteExchange(t, "sluice-ex-a") })
	w := newWriter(t, Options{Exchange: "sluice-ex-{topic}", RoutingKey: "k", UnroutableGrace: time.Hour})
	m := []sink.Message{msg("a", "e0", "x")}
	expectReason(t, "missing exchange", one(t, write(t, w, m)), ReasonNoExchange, false)

	srv.DeclareExchange(t, "sluice-ex-a", "direct", "k", "exq")
	mustWrite(t, w, m)
	if got := readIDs(t, srv, "exq"); !slices.Equal(got, []string{"e0"}) {
		t.Fatalf("queue holds %v", got)
	}

	srv.DeleteExchange(t, "sluice-ex-a")
	expectReason(t, "exchange deleted after it was seen", one(t, write(t, w, m)), ReasonNoExchange, false)
	expectReason(t, "checked again", one(t, write(t, w, m)), ReasonNoExchange, false)

	w0 := newWriter(t, Options{Exchange: "sluice-ex-{topic}", RoutingKey: "k", UnroutableGrace: -1})
	mixed := []sink.Message{msg("a", "e1", "x"), msg("b", "e2", "y")}
	srv.DeclareExchange(t, "sluice-ex-b", "direct", "k", "exq")
	t.Cleanup(func() { srv.DeleteExchange(t, "sluice-ex-b") })
	errs := batchErrs(t, write(t, w0, mixed), 2)
	expectReason(t, "missing exchange without grace", errs[0], ReasonNoExchange, true)
	if errs[1] != nil {
		t.Fatalf("message for an existing exchange: %v", errs[1])
	}
}

// TestTooLarge: a body over the broker's max_message_size makes it close
// the channel (406). That message alone fails permanently (too_large);
// its unconfirmed batch-mates are retried and arrive; the one at the limit
// is fine.
func TestTooLarge(t *testing.T) {
	srv := node(t)
	srv.DeclareQueue(t, "bigq", nil)
	w := newWriter(t, Options{})
	msgs := []sink.Message{
		msg("bigq", "s0", "small"),
		msg("bigq", "big", strings.Repeat("x", testMaxMessageSize+1)),
		msg("bigq", "s1", "small"),
		msg("bigq", "limit", strings.Repeat("y", testMaxMessageSize)),
	}
	errs := batchErrs(t, write(t, w, msgs), len(msgs))
	expectReason(t, "body over max_message_size", errs[1], ReasonTooLarge, true)
	if !strings.Contains(errs[1].Error(), fmt.Sprint(testMaxMessageSize)) {
		t.Fatalf("error does not name the limit: %v", errs[1])
	}
	var retry []sink.Message
	for i, err := range errs {
		if i == 1 || err == nil {
			continue
		}
		if sink.IsPermanent(err) {
			t.Fatalf("batch-mate %s failed permanently: %v", msgs[i].ID, err)
		}
		retry = append(retry, msgs[i])
	}
	if len(retry) == 0 {
		t.Fatal("messages published after the refused one cannot have been confirmed")
	}
	mustWrite(t, w, retry)
	got := readIDs(t, srv, "bigq")
	for _, id := range []string{"s0", "s1", "limit"} {
		if !slices.Contains(got, id) {
			t.Fatalf("%s never arrived: queue holds %v", id, got)
		}
	}
	if slices.Contains(got, "big") {
		t.Fatalf("the refused message arrived: %v", got)
	}
}

// TestInvalidDestination: a routing key rendered from a key longer than
// AMQP allows (255 bytes) fails that message permanently before anything
// is sent; its batch-mates are delivered.
func TestInvalidDestination(t *testing.T) {
	srv := node(t)
	srv.DeclareQueue(t, "short", nil)
	w := newWriter(t, Options{RoutingKey: "{key}"})
	ok := msg("ignored", "ok", "x")
	ok.Key = []byte("short")
	long := msg("ignored", "long", "y")
	long.Key = []byte(strings.Repeat("k", 256))
	errs := batchErrs(t, write(t, w, []sink.Message{long, ok}), 2)
	expectReason(t, "routing key of 256 bytes", errs[0], ReasonInvalidDestination, true)
	if errs[1] != nil {
		t.Fatalf("batch-mate: %v", errs[1])
	}
	if got := readIDs(t, srv, "short"); !slices.Equal(got, []string{"ok"}) {
		t.Fatalf("queue holds %v", got)
	}
}
