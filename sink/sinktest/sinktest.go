package sinktest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// Topics the suite writes to. A harness whose upstream needs topics to exist
// creates these.
const (
	TopicA = "sinktest-a"
	TopicB = "sinktest-b"
)

// waitLimit bounds how long the suite waits for a call that must return; it
// is a liveness bound, not a speed requirement.
const waitLimit = 30 * time.Second

// Harness connects the suite to one sink backend.
type Harness struct {
	// New returns a new sink whose upstream holds nothing yet (or nothing
	// that Read or Count will report). Required. The suite closes it.
	New func(t *testing.T) sink.Sink
	// Read returns every message that arrived upstream from the sink New
	// returned for t, in arrival order. ID must hold the sluice id (a
	// harness whose upstream carries it in the sink.IDHeader header copies
	// it; the suite ignores IDHeader headers). Nil when the sink keeps
	// nothing readable: then only errors and Count are checked.
	Read func(t *testing.T) []sink.Message
	// Count, optional, returns how many messages arrived, for sinks without
	// Read.
	Count func(t *testing.T) int
	// Stall, optional, makes the upstream of t's sink stop answering, so
	// that a Write blocks until its ctx is done or Close is called, and
	// returns a function that undoes it. Enables the blocked-Write checks.
	Stall func(t *testing.T) (release func())
	// Caps says what the upstream can represent.
	Caps Caps
}

// Caps declares what a sink keeps. The zero value is the weakest sink:
// a nil key equals an empty one, no partitions, timestamps not compared,
// total order.
type Caps struct {
	// EmptyKey: an empty non-nil key arrives non-nil, distinct from a nil
	// key.
	EmptyKey bool
	// Partition: a message with an explicit Partition arrives with that
	// Partition in Read. Messages without one are not checked.
	Partition bool
	// TimePrecision: Message.Time arrives truncated to this precision
	// (time.Nanosecond: exact, time.Millisecond: Kafka). 0: not compared.
	TimePrecision time.Duration
	// OrderPerKey: order is kept only among messages with the same topic
	// and key (Kafka: per partition) instead of across the whole batch.
	OrderPerKey bool
	// UnorderedHeaders: headers arrive as a map (NATS, AMQP tables): the
	// order between different names is not kept, the order of the values
	// of one name is.
	UnorderedHeaders bool
}

// Run runs the conformance suite against h.
func Run(t *testing.T, h Harness) {
	if h.New == nil {
		t.Fatal("sinktest: Harness.New is nil")
	}
	t.Run("Batch", func(t *testing.T) { testBatch(t, h) })
	t.Run("Batches", func(t *testing.T) { testBatches(t, h) })
	t.Run("ManySmall", func(t *testing.T) { testManySmall(t, h) })
	t.Run("EmptyBatch", func(t *testing.T) { testEmptyBatch(t, h) })
	t.Run("CloseIdempotent", func(t *testing.T) { testCloseIdempotent(t, h) })
	t.Run("WriteAfterClose", func(t *testing.T) { testWriteAfterClose(t, h) })
	t.Run("CancelledContext", func(t *testing.T) { testCancelled(t, h) })
	if h.Stall != nil {
		t.Run("CancelUnblocksWrite", func(t *testing.T) { testStalledCancel(t, h) })
		t.Run("CloseUnblocksWrite", func(t *testing.T) { testStalledClose(t, h) })
	}
}

// open builds a sink and closes it when the test ends.
func open(t *testing.T, h Harness) sink.Sink {
	t.Helper()
	s := h.New(t)
	if s == nil {
		t.Fatal("Harness.New returned nil")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		_ = s.Close(ctx) // Close is idempotent; tests that check it do so themselves
	})
	return s
}

func write(t *testing.T, s sink.Sink, msgs []sink.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := s.Write(ctx, msgs); err != nil {
		t.Fatalf("Write(%d messages): %v (reason %s, permanent %v)",
			len(msgs), err, sink.Reason(err), sink.IsPermanent(err))
	}
}

func closeSink(t *testing.T, s sink.Sink) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// expect checks that exactly want arrived upstream.
func expect(t *testing.T, h Harness, want []sink.Message) {
	t.Helper()
	if h.Read == nil {
		if h.Count != nil {
			if n := h.Count(t); n != len(want) {
				t.Fatalf("Count = %d, want %d", n, len(want))
			}
		}
		return
	}
	if err := Diff(h.Caps, want, h.Read(t)); err != nil {
		t.Fatal(err)
	}
}

// mustFailTransient checks an error the forwarder must retry, not
// dead-letter.
func mustFailTransient(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: Write returned nil, want an error", what)
	}
	if sink.IsPermanent(err) {
		t.Fatalf("%s: Write error %v is Permanent: the forwarder would dead-letter the batch", what, err)
	}
	var be *sink.BatchError
	if errors.As(err, &be) {
		t.Fatalf("%s: Write error %v is a BatchError, want a whole-batch error", what, err)
	}
}

func testBatch(t *testing.T, h Harness) {
	s := open(t, h)
	msgs := Variety(h.Caps)
	want := Clone(msgs)
	write(t, s, msgs)
	if err := Diff(Caps{EmptyKey: true, Partition: true, TimePrecision: 1}, want, msgs); err != nil {
		t.Fatalf("Write modified its input: %v", err)
	}
	Scribble(msgs) // a sink that kept references would now deliver garbage
	expect(t, h, want)
}

func testBatches(t *testing.T, h Harness) {
	s := open(t, h)
	var want []sink.Message
	for b := range 5 {
		msgs := Generate(fmt.Sprintf("b%d-", b), 40, 200)
		want = append(want, Clone(msgs)...)
		write(t, s, msgs)
		Scribble(msgs)
	}
	expect(t, h, want)
}

func testManySmall(t *testing.T, h Harness) {
	s := open(t, h)
	msgs := Generate("small-", 1000, 20)
	want := Clone(msgs)
	write(t, s, msgs)
	expect(t, h, want)
}

func testEmptyBatch(t *testing.T, h Harness) {
	s := open(t, h)
	write(t, s, nil)
	write(t, s, []sink.Message{})
	expect(t, h, nil)
}

func testCloseIdempotent(t *testing.T, h Harness) {
	s := open(t, h)
	msgs := Generate("close-", 10, 50)
	write(t, s, msgs)
	closeSink(t, s)
	closeSink(t, s)
	expect(t, h, msgs)
}

func testWriteAfterClose(t *testing.T, h Harness) {
	s := open(t, h)
	closeSink(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	mustFailTransient(t, "after Close", s.Write(ctx, Generate("late-", 3, 10)))
	expect(t, h, nil)
}

func testCancelled(t *testing.T, h Harness) {
	s := open(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	first := Generate("cancelled-", 5, 10)
	err := s.Write(ctx, first)
	mustFailTransient(t, "cancelled ctx", err)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Write with a cancelled ctx: %v, want an error wrapping context.Canceled", err)
	}
	// The sink stays usable. The cancelled batch may have landed anyway
	// (at-least-once), but then whole and before the next one.
	second := Generate("after-", 5, 10)
	write(t, s, second)
	if h.Read == nil {
		return
	}
	got := h.Read(t)
	if Diff(h.Caps, second, got) != nil {
		if err := Diff(h.Caps, append(Clone(first), second...), got); err != nil {
			t.Fatalf("after a cancelled Write: %v", err)
		}
	}
}

// blockedWrite starts a Write on a stalled sink and returns a channel with
// its result.
func blockedWrite(t *testing.T, h Harness, s sink.Sink, ctx context.Context) <-chan error {
	t.Helper()
	release := h.Stall(t)
	t.Cleanup(release)
	done := make(chan error, 1)
	go func() { done <- s.Write(ctx, Generate("stalled-", 3, 10)) }()
	select {
	case err := <-done:
		t.Fatalf("Write on a stalled upstream returned %v at once; Stall must make Write block", err)
	case <-time.After(100 * time.Millisecond):
	}
	return done
}

func waitErr(t *testing.T, done <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(waitLimit):
		t.Fatalf("%s: Write still blocked after %v", what, waitLimit)
		return nil
	}
}

func testStalledCancel(t *testing.T, h Harness) {
	s := open(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := blockedWrite(t, h, s, ctx)
	cancel()
	mustFailTransient(t, "ctx cancelled while blocked", waitErr(t, done, "ctx cancelled"))
}

func testStalledClose(t *testing.T, h Harness) {
	s := open(t, h)
	done := blockedWrite(t, h, s, context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_ = s.Close(ctx) // may report the aborted write; only the unblocking matters
	mustFailTransient(t, "Close while blocked", waitErr(t, done, "Close"))
}
