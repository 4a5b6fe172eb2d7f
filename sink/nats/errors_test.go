package nats

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluiceio/sluice/internal/testserver/natsserver"
	"github.com/sluiceio/sluice/sink"
)

// batchErrs returns the per-message errors of a Write that must have
// failed for some messages only.
func batchErrs(t *testing.T, err error, n int) []error {
	t.Helper()
	var be *sink.BatchError
	if !errors.As(err, &be) || len(be.Errs) != n {
		t.Fatalf("Write: %v, want a BatchError over %d messages", err, n)
	}
	return be.Errs
}

// TestTooLarge: a message over the stream's max_msg_size, or over the
// server's max_payload, fails alone and permanently (reason too_large);
// its batch-mates are delivered. Against every server version.
func TestTooLarge(t *testing.T) {
	for version, bin := range servers(t) {
		t.Run(version, func(t *testing.T) {
			srv := natsserver.Start(t, natsserver.Options{Binary: bin, MaxPayload: 64 << 10})
			stream, prefix := newStream(t, srv, func(c *jetstream.StreamConfig) { c.MaxMsgSize = 4 << 10 })
			w := newWriter(t, Options{URL: srv.URL(), Subject: prefix + ".{topic}"})
			big := strings.Repeat("x", 8<<10)    // over max_msg_size
			huge := strings.Repeat("y", 100<<10) // over max_payload
			errs := batchErrs(t, w.Write(context.Background(), []sink.Message{
				msg("ok-1", "t", "small"), msg("big", "t", big), msg("ok-2", "t", "small"), msg("huge", "t", huge), msg("ok-3", "t", "small"),
			}), 5)
			for i, want := range []bool{false, true, false, true, false} {
				switch {
				case !want && errs[i] != nil:
					t.Errorf("message %d: %v", i, errs[i])
				case want && (!sink.IsPermanent(errs[i]) || sink.Reason(errs[i]) != ReasonTooLarge):
					t.Errorf("message %d: %v (reason %s), want permanent too_large", i, errs[i], sink.Reason(errs[i]))
				}
			}
			got := readBack(t, srv, stream, prefix)
			if len(got) != 3 || got[0].ID != "ok-1" || got[1].ID != "ok-2" || got[2].ID != "ok-3" {
				t.Fatalf("stream holds %v", got)
			}
		})
	}
}

// TestStreamFull: a stream at its limits with discard new refuses new
// messages: transient (reason stream_full), never dead-lettered, and
// delivered once there is room.
func TestStreamFull(t *testing.T) {
	srv := natsserver.Start(t, natsserver.Options{})
	stream, prefix := newStream(t, srv, func(c *jetstream.StreamConfig) {
		c.MaxMsgs, c.Discard = 3, jetstream.DiscardNew
	})
	w := newWriter(t, Options{URL: srv.URL(), Subject: prefix + ".{topic}"})
	batch := []sink.Message{msg("f-1", "t", "v"), msg("f-2", "t", "v"), msg("f-3", "t", "v"), msg("f-4", "t", "v"), msg("f-5", "t", "v")}
	errs := batchErrs(t, w.Write(context.Background(), batch), 5)
	for i, e := range errs {
		if i < 3 && e != nil || i >= 3 && (e == nil || sink.IsPermanent(e) || sink.Reason(e) != ReasonStreamFull) {
			t.Fatalf("message %d: %v (reason %s)", i, e, sink.Reason(e))
		}
	}
	// Every message of a Write refused: a plain transient error.
	err := w.Write(context.Background(), batch[3:])
	var be *sink.BatchError
	if err == nil || errors.As(err, &be) || sink.IsPermanent(err) || sink.Reason(err) != ReasonStreamFull {
		t.Fatalf("Write to a full stream: %v", err)
	}
	srv.CreateStream(jetstream.StreamConfig{Name: stream, Subjects: []string{prefix + ".>"}, MaxMsgs: 10, Discard: jetstream.DiscardNew})
	mustWrite(t, w, batch[3:])
	if got := readBack(t, srv, stream, prefix); len(got) != 5 {
		t.Fatalf("stream holds %d messages, want 5", len(got))
	}
}

// fakeClock is a settable Options.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestNoStreamGrace: a subject no stream captures fails transiently
// (reason no_stream) during NoStreamGrace, then permanently, that message
// alone; a stream created for it makes it deliverable again and resets the
// grace.
func TestNoStreamGrace(t *testing.T) {
	srv := natsserver.Start(t, natsserver.Options{})
	stream, prefix := newStream(t, srv, func(c *jetstream.StreamConfig) { c.Subjects = []string{"known.>"} })
	clock := &fakeClock{now: time.Now()}
	w := newWriter(t, Options{URL: srv.URL(), Subject: "{topic}", NoStreamGrace: time.Minute, Now: clock.Now})
	lost := prefix + ".orphan"

	err := w.Write(context.Background(), []sink.Message{msg("n-1", lost, "v")})
	if err == nil || sink.IsPermanent(err) || sink.Reason(err) != ReasonNoStream {
		t.Fatalf("within the grace: %v (reason %s)", err, sink.Reason(err))
	}
	clock.Add(59 * time.Second)
	errs := batchErrs(t, w.Write(context.Background(), []sink.Message{msg("k-1", "known.a", "v"), msg("n-1", lost, "v")}), 2)
	if errs[0] != nil || errs[1] == nil || sink.IsPermanent(errs[1]) {
		t.Fatalf("still within the grace: %v", errs)
	}
	clock.Add(2 * time.Second)
	errs = batchErrs(t, w.Write(context.Background(), []sink.Message{msg("k-2", "known.a", "v"), msg("n-1", lost, "v")}), 2)
	if errs[0] != nil || !sink.IsPermanent(errs[1]) || sink.Reason(errs[1]) != ReasonNoStream {
		t.Fatalf("after the grace: %v", errs)
	}
	if !strings.Contains(errs[1].Error(), "no stream for subject "+lost) {
		t.Fatalf("error does not name the subject: %v", errs[1])
	}

	// A stream for the subject appears: delivered, and the grace starts
	// over for the next time.
	srv.CreateStream(jetstream.StreamConfig{Name: "LATE", Subjects: []string{lost}})
	mustWrite(t, w, []sink.Message{msg("n-2", lost, "v")})
	srv.DeleteStream("LATE")
	clock.Add(time.Hour)
	err = w.Write(context.Background(), []sink.Message{msg("n-3", lost, "v")})
	if err == nil || sink.IsPermanent(err) {
		t.Fatalf("grace not reset by the delivery: %v", err)
	}
	if got := srv.Read(stream); len(got) != 2 {
		t.Fatalf("stream %s holds %d messages, want 2", stream, len(got))
	}
}

// TestNoStreamNoGrace: with a negative grace a subject without a stream
// fails permanently at once.
func TestNoStreamNoGrace(t *testing.T) {
	srv := natsserver.Start(t, natsserver.Options{})
	w := newWriter(t, Options{URL: srv.URL(), NoStreamGrace: -1})
	err := w.Write(context.Background(), []sink.Message{msg("x", "nowhere", "v")})
	var be *sink.BatchError
	if !errors.As(err, &be) || !sink.IsPermanent(be.Errs[0]) || sink.Reason(be.Errs[0]) != ReasonNoStream {
		t.Fatalf("Write: %v", err)
	}
}
