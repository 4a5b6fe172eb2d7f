package sinktest_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/sinktest"
)

var errClosed = errors.New("mem: closed")

// memSink keeps what it receives; stall makes Write block.
type memSink struct {
	mu      sync.Mutex
	got     []sink.Message
	stall   chan struct{} // non-nil: Write waits until it is closed
	closing chan struct{}
	once    sync.Once
}

func newMem() *memSink { return &memSink{closing: make(chan struct{})} }

func (m *memSink) Write(ctx context.Context, msgs []sink.Message) error {
	select {
	case <-m.closing:
		return errClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	stall := m.stall
	m.mu.Unlock()
	if stall != nil {
		select {
		case <-stall:
		case <-ctx.Done():
			return ctx.Err()
		case <-m.closing:
			return errClosed
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.got = append(m.got, sinktest.Clone(msgs)...)
	return nil
}

func (m *memSink) Close(context.Context) error {
	m.once.Do(func() { close(m.closing) })
	return nil
}

func TestRunOnMemorySink(t *testing.T) {
	var m *memSink
	sinktest.Run(t, sinktest.Harness{
		New: func(t *testing.T) sink.Sink { m = newMem(); return m },
		Read: func(t *testing.T) []sink.Message {
			m.mu.Lock()
			defer m.mu.Unlock()
			return sinktest.Clone(m.got)
		},
		Stall: func(t *testing.T) func() {
			ch := make(chan struct{})
			m.mu.Lock()
			m.stall = ch
			m.mu.Unlock()
			var once sync.Once
			return func() { once.Do(func() { close(ch) }) }
		},
		Caps: sinktest.Caps{EmptyKey: true, Partition: true, TimePrecision: time.Nanosecond},
	})
}

func TestDiff(t *testing.T) {
	want := sinktest.Generate("d", 6, 20)
	caps := sinktest.Caps{EmptyKey: true, TimePrecision: time.Nanosecond}
	if err := sinktest.Diff(caps, want, sinktest.Clone(want)); err != nil {
		t.Fatalf("equal batches: %v", err)
	}

	mutate := map[string]func([]sink.Message) []sink.Message{
		"missing":   func(g []sink.Message) []sink.Message { return g[:5] },
		"duplicate": func(g []sink.Message) []sink.Message { return append(g, g[0]) },
		"reordered": func(g []sink.Message) []sink.Message { g[0], g[1] = g[1], g[0]; return g },
		"value":     func(g []sink.Message) []sink.Message { g[2].Value[0] ^= 1; return g },
		"key nil":   func(g []sink.Message) []sink.Message { g[2].Key = nil; return g },
		"header":    func(g []sink.Message) []sink.Message { g[3].Headers = nil; return g },
		"time":      func(g []sink.Message) []sink.Message { g[4].Time = g[4].Time.Add(time.Nanosecond); return g },
		"id":        func(g []sink.Message) []sink.Message { g[5].ID = "other"; return g },
	}
	for name, f := range mutate {
		if err := sinktest.Diff(caps, want, f(sinktest.Clone(want))); err == nil {
			t.Errorf("%s: Diff found no difference", name)
		}
	}

	// An empty key equals nil without EmptyKey; the id header is ignored.
	got := sinktest.Clone(want)
	want[0].Key, got[0].Key = []byte{}, nil
	got[1].Headers = append([]sink.Header{{Key: sink.IDHeader, Value: []byte(got[1].ID)}}, got[1].Headers...)
	if err := sinktest.Diff(sinktest.Caps{}, want, got); err != nil {
		t.Fatalf("weak caps: %v", err)
	}
	if err := sinktest.Diff(caps, want, got); err == nil {
		t.Fatal("EmptyKey: nil key accepted for an empty one")
	}
}

func TestDiffOrderPerKey(t *testing.T) {
	want := sinktest.Generate("o", 30, 10) // ten keys over two topics
	lane := func(m sink.Message) string { return m.Topic + "/" + string(m.Key) }
	perKey := sinktest.Caps{OrderPerKey: true}

	// Grouped by lane, order inside each lane kept: fine per key only.
	got := sinktest.Clone(want)
	slices.SortStableFunc(got, func(a, b sink.Message) int { return strings.Compare(lane(a), lane(b)) })
	if err := sinktest.Diff(perKey, want, got); err != nil {
		t.Fatalf("per-key order kept: %v", err)
	}
	if err := sinktest.Diff(sinktest.Caps{}, want, got); err == nil {
		t.Fatal("total order: regrouping accepted")
	}

	// Two messages of one lane swapped.
	got = sinktest.Clone(want)
	for j := 1; j < len(got); j++ {
		if lane(got[j]) == lane(got[0]) {
			got[0], got[j] = got[j], got[0]
			break
		}
	}
	if err := sinktest.Diff(perKey, want, got); err == nil {
		t.Fatal("per key: reorder within a lane accepted")
	}
}

func TestDiffUnorderedHeaders(t *testing.T) {
	hs := func(kv ...string) []sink.Header {
		var out []sink.Header
		for i := 0; i < len(kv); i += 2 {
			out = append(out, sink.Header{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return out
	}
	msg := func(h []sink.Header) []sink.Message {
		return []sink.Message{{ID: "u", Topic: sinktest.TopicA, Value: []byte("v"), Headers: h}}
	}
	want := msg(hs("a", "1", "b", "2", "a", "3"))
	unordered := sinktest.Caps{UnorderedHeaders: true}
	if err := sinktest.Diff(unordered, want, msg(hs("b", "2", "a", "1", "a", "3"))); err != nil {
		t.Fatalf("names reordered: %v", err)
	}
	if err := sinktest.Diff(sinktest.Caps{}, want, msg(hs("b", "2", "a", "1", "a", "3"))); err == nil {
		t.Fatal("ordered caps accepted reordered names")
	}
	for name, got := range map[string][]sink.Message{
		"values of one name reordered": msg(hs("a", "3", "b", "2", "a", "1")),
		"value changed":                msg(hs("a", "1", "b", "x", "a", "3")),
		"name changed":                 msg(hs("a", "1", "c", "2", "a", "3")),
		"header missing":               msg(hs("a", "1", "b", "2")),
	} {
		if err := sinktest.Diff(unordered, want, got); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
