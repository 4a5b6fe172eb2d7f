package httpsink

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/sinktest"
)

// caps: the batch format keeps an empty key apart from a nil one; it has no
// partitions and no timestamps (the receiver stamps its own).
var caps = sinktest.Caps{EmptyKey: true}

func TestConformance(t *testing.T) {
	var rc *receiver
	sinktest.Run(t, sinktest.Harness{
		New: func(t *testing.T) sink.Sink {
			if strings.HasSuffix(t.Name(), "/Batch") {
				// Variety holds a non-UTF-8 key, a non-UTF-8 header value
				// and a repeated header name, which the /v1/messages format
				// cannot carry; sinktest.Caps has no field to say so.
				// TestVariety writes the same batch and checks that the rest
				// arrives byte for byte and those two are reported
				// Permanent, one by one.
				t.Skip("the batch format cannot carry binary keys or header values: see TestVariety")
			}
			rc = newReceiver(t)
			w, err := New(Options{URL: rc.url()})
			if err != nil {
				t.Fatal(err)
			}
			return w
		},
		Read: func(t *testing.T) []sink.Message { return rc.messages() },
		Stall: func(t *testing.T) func() {
			ch := make(chan struct{})
			rc.mu.Lock()
			rc.stall = ch
			rc.mu.Unlock()
			var once sync.Once
			return func() { once.Do(func() { close(ch) }) }
		},
		Caps: caps,
	})
}

// TestVariety writes sinktest.Variety: every message the format can carry
// arrives byte for byte (JSON values raw, the rest via value_b64, ids
// kept); the message with a binary key and header and the one with a
// repeated header are reported Permanent in a BatchError, and only they.
func TestVariety(t *testing.T) {
	rc := newReceiver(t)
	w := newWriter(t, Options{URL: rc.url()})
	msgs := sinktest.Variety(caps)
	want := sinktest.Clone(msgs)

	err := w.Write(context.Background(), msgs)
	var be *sink.BatchError
	if !errors.As(err, &be) || len(be.Errs) != len(msgs) {
		t.Fatalf("Write = %v, want a BatchError with %d entries", err, len(msgs))
	}
	var delivered []sink.Message
	for i, e := range be.Errs {
		m := want[i]
		binary := string(m.Key) == "\xff\x00\xfe"
		repeated := len(m.Headers) > 1 && m.Headers[0].Key == "dup"
		switch {
		case binary && (!sink.IsPermanent(e) || sink.Reason(e) != ReasonNotUTF8):
			t.Errorf("message %d (binary key): %v (reason %s), want Permanent %s", i, e, sink.Reason(e), ReasonNotUTF8)
		case repeated && (!sink.IsPermanent(e) || sink.Reason(e) != ReasonBadHeader):
			t.Errorf("message %d (repeated header): %v (reason %s), want Permanent %s", i, e, sink.Reason(e), ReasonBadHeader)
		case !binary && !repeated && e != nil:
			t.Errorf("message %d: %v, want delivered", i, e)
		case !binary && !repeated:
			delivered = append(delivered, m)
		}
	}
	if len(delivered) != len(msgs)-2 {
		t.Fatalf("%d messages delivered, want %d", len(delivered), len(msgs)-2)
	}
	if err := sinktest.Diff(caps, delivered, rc.messages()); err != nil {
		t.Fatal(err)
	}
	if n := rc.requestCount(); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}

	// Alone, each one is reported without a request.
	for _, i := range []int{2, 9} {
		err := w.Write(context.Background(), want[i:i+1])
		if !errors.As(err, &be) || len(be.Errs) != 1 || !sink.IsPermanent(be.Errs[0]) {
			t.Fatalf("message %d alone: %v, want a BatchError with one Permanent error", i, err)
		}
	}
	if n := rc.requestCount(); n != 1 {
		t.Fatalf("%d requests, want 1: nothing to send for unrepresentable messages", n)
	}
}

func newWriter(t testing.TB, o Options) *Writer {
	t.Helper()
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return w
}
