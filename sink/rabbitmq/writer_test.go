package rabbitmq

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluiceio/sluice/sink"
)

// TestWhatIsSent: every message is persistent, carries its id as
// message-id and sluice-id, its key as sluice-key, its headers (a repeated
// name as an array, in order), its push time (seconds) as timestamp; a
// chained sluice-id header is kept.
func TestWhatIsSent(t *testing.T) {
	srv := node(t)
	srv.DeclareQueue(t, "props", nil)
	w := newWriter(t, Options{})
	at := time.Date(2026, 3, 4, 5, 6, 7, 890, time.UTC)
	msgs := []sink.Message{
		{ID: "id-1", Topic: "props", Key: []byte("customer-7"), Value: []byte(`{"a":1}`), Time: at,
			Headers: []sink.Header{{Key: "trace", Value: []byte("t1")}, {Key: "dup", Value: []byte("1")}, {Key: "dup", Value: []byte("2")}}},
		{ID: "id-2", Topic: "props", Value: []byte("no key"), Time: at,
			Headers: []sink.Header{{Key: sink.IDHeader, Value: []byte("upstream-id")}}},
	}
	mustWrite(t, w, msgs)
	got := srv.ReadQueue(t, "props")
	if len(got) != 2 {
		t.Fatalf("%d messages", len(got))
	}
	d := got[0]
	if d.DeliveryMode != amqp.Persistent || d.MessageId != "id-1" || !d.Timestamp.Equal(at.Truncate(time.Second)) {
		t.Fatalf("properties: mode %d id %q time %v", d.DeliveryMode, d.MessageId, d.Timestamp)
	}
	if d.Headers[sink.IDHeader] != "id-1" || d.Headers[KeyHeader] != "customer-7" || d.Headers["trace"] != "t1" {
		t.Fatalf("headers %v", d.Headers)
	}
	if dup, ok := d.Headers["dup"].([]any); !ok || len(dup) != 2 || dup[0] != "1" || dup[1] != "2" {
		t.Fatalf("repeated header: %#v", d.Headers["dup"])
	}
	if string(d.Body) != `{"a":1}` || d.Exchange != "" || d.RoutingKey != "props" {
		t.Fatalf("body %q exchange %q routing key %q", d.Body, d.Exchange, d.RoutingKey)
	}
	d = got[1]
	if d.MessageId != "upstream-id" || d.Headers[sink.IDHeader] != "upstream-id" {
		t.Fatalf("chained id: message-id %q headers %v", d.MessageId, d.Headers)
	}
	if _, ok := d.Headers[KeyHeader]; ok {
		t.Fatalf("a message without a key has a %s header: %v", KeyHeader, d.Headers)
	}
}

// TestTemplates: exchange and routing key come from the templates.
func TestTemplates(t *testing.T) {
	srv := node(t)
	srv.DeclareQueue(t, "tmplq", nil)
	srv.DeclareExchange(t, "sluice-events", "topic", "orders.#", "tmplq")
	t.Cleanup(func() { srv.DeleteExchange(t, "sluice-events") })
	w := newWriter(t, Options{Exchange: "sluice-events", RoutingKey: "{topic}.{key}"})
	m := msg("orders", "t0", "x")
	m.Key = []byte("eu")
	mustWrite(t, w, []sink.Message{m})
	got := srv.ReadQueue(t, "tmplq")
	if len(got) != 1 || got[0].Exchange != "sluice-events" || got[0].RoutingKey != "orders.eu" {
		t.Fatalf("got %+v", got)
	}
}

// TestTLS: amqps:// with the CA that signed the node's certificate
// delivers; without it the handshake fails transiently (reason tls).
func TestTLS(t *testing.T) {
	srv := node(t)
	srv.DeclareQueue(t, "tlsq", nil)
	tlsCfg, err := TLSConfig(srv.CAFile, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, Options{URL: srv.TLSURL(), TLS: tlsCfg})
	mustWrite(t, w, []sink.Message{msg("tlsq", "tls0", "x")})
	if got := readIDs(t, srv, "tlsq"); len(got) != 1 || got[0] != "tls0" {
		t.Fatalf("queue holds %v", got)
	}
	w2 := newWriter(t, Options{URL: srv.TLSURL()})
	expectReason(t, "unknown CA", write(t, w2, []sink.Message{msg("tlsq", "tls1", "x")}), ReasonTLS, false)
}

// TestCloseIdle: Close of a Writer that never connected, or whose broker
// is gone, returns at once; Write after Close fails with ErrClosed.
func TestCloseIdle(t *testing.T) {
	w, err := New(Options{URL: "amqp://guest:guest@127.0.0.1:1/"})
	if err != nil {
		t.Fatal(err)
	}
	expectReason(t, "nothing listens", write(t, w, []sink.Message{msg("q", "c0", "x")}), ReasonNetwork, false)
	// The reconnect backoff runs: the next Write fails at once, with the
	// same reason.
	expectReason(t, "in the backoff", write(t, w, []sink.Message{msg("q", "c0", "x")}), ReasonNetwork, false)
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	err = write(t, w, []sink.Message{msg("q", "c1", "x")})
	if !errors.Is(err, ErrClosed) || sink.IsPermanent(err) {
		t.Fatalf("Write after Close: %v", err)
	}
}

func TestOptions(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{}, "no URL"},
		{Options{URL: "http://host/"}, "not an amqp"},
		{Options{URL: "amqp://u:secret@host/", Exchange: "{nope}"}, "exchange"},
		{Options{URL: "amqp://u:secret@host/", RoutingKey: "{topic"}, "routing key"},
		{Options{URL: "amqp://u:secret@host/", RoutingKey: strings.Repeat("k", 256)}, "longer than 255"},
		{Options{URL: "amqp://u:secret@host/", WriteTimeout: -1}, "negative write timeout"},
		{Options{URL: "amqp://u:secret@host/", ReconnectMin: time.Second, ReconnectMax: time.Millisecond}, "reconnect max"},
	} {
		_, err := New(c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error about %q", c.o, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error shows the password: %v", err)
		}
	}
	cfg, err := Options{URL: "amqp://user:secret@host:5672/vhost"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cfg.redacted, "secret") || cfg.RoutingKey != "{topic}" || cfg.UnroutableGrace != DefaultUnroutableGrace {
		t.Fatalf("defaults: %+v", cfg)
	}
}
