package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// The forwarder's memory bound (forwarder.go: "the message a stuck lane
// retries is not kept in memory either … what the forwarder holds in memory
// is bounded by a per-sink budget"; hold: "no message bytes between
// attempts"): the accounting says a stuck lane holds nothing, but send's
// msgs slice keeps pointing at the message bytes of the last attempt (and
// at the batch-mates it spilled) across the backoff sleep, so every stuck
// topic keeps its messages alive. Stuck topics × message size is then live
// heap, past the 16 MiB budget, while heldBytes reports ~0.
func TestStuckLanesPinNoMessageBytes(t *testing.T) {
	const topics, size = 64, 512 << 10 // 32 MiB of stuck messages, twice the budget
	var mu sync.Mutex
	attempts := map[string]int{}
	s := funcSink{write: func(ctx context.Context, msgs []sink.Message) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[msgs[0].Topic]++
		return errors.New("review: topic unavailable")
	}}
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{
		Name: "mem", Sink: s, RetryMin: 50 * time.Millisecond, RetryMax: 100 * time.Millisecond,
	}}})
	base := liveHeap()
	for i := range topics {
		rec := appendMsg(nil, &Msg{Time: time.Now().UnixNano(), Partition: sink.NoPartition,
			Topic: fmt.Sprintf("stuck%d", i), Sinks: []string{"mem"}, Value: bytes.Repeat([]byte{'x'}, size)})
		if _, err := ta.sp.Append(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every stuck topic retried", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for topic, c := range attempts {
			if strings.HasPrefix(topic, "stuck") && c >= 3 {
				n++
			}
		}
		return n == topics
	})
	f := ta.a.fwds[0]
	grown := liveHeap() - base
	t.Logf("live heap grew by %d MiB; forwarder accounts %d bytes held (budget %d MiB)", grown>>20, f.heldBytes(), f.budget>>20)
	if grown > f.budget {
		t.Fatalf("stuck lanes keep %d MiB of message bytes alive (accounted: %d bytes; budget %d MiB): memory grows with stuck topics × message size",
			grown>>20, f.heldBytes(), f.budget>>20)
	}
}

// liveHeap is the heap in use after a collection, the least of five looks:
// what a test's lanes pin is live at every look, while what they allocate
// for an attempt between a collection and the look after it comes and goes
// (64 lanes reloading 512 KiB each made one look 18 MiB high in a loaded
// CI run).
func liveHeap() int64 {
	var ms runtime.MemStats
	least := int64(-1)
	for range 5 {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if h := int64(ms.HeapAlloc); least < 0 || h < least {
			least = h
		}
	}
	return least
}

// The same for lanes held by a dead letter the log cannot take
// (deadletter_stuck.go: "a waiting lane holds no message bytes"): stall
// evicts the item once, at the first failure, but reload then puts the
// bytes back into it.raw for the next attempt and nothing evicts them again,
// so each waiting lane keeps its message alive (and send's msgs slice keeps
// the batch it split).
func TestDeadLetterWaitingLanesPinNoMessageBytes(t *testing.T) {
	const topics, size = 64, 512 << 10
	dir := t.TempDir()
	var mu sync.Mutex
	attempts := map[string]int{}
	s := funcSink{write: func(ctx context.Context, msgs []sink.Message) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[msgs[0].Topic]++
		return sink.Permanent(errors.New("review: refused"))
	}}
	ta := startAgent(t, dir, Options{DeadLetter: unwritableDeadLetters(t, dir), Sinks: []SinkSpec{{
		Name: "mem", Sink: s, RetryMin: 50 * time.Millisecond, RetryMax: 100 * time.Millisecond,
	}}})
	base := liveHeap()
	for i := range topics {
		rec := appendMsg(nil, &Msg{Time: time.Now().UnixNano(), Partition: sink.NoPartition,
			Topic: fmt.Sprintf("stuck%d", i), Sinks: []string{"mem"}, Value: bytes.Repeat([]byte{'x'}, size)})
		if _, err := ta.sp.Append(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
	}
	f := ta.a.fwds[0]
	waitFor(t, "every topic waiting on its dead letter", func() bool { return ta.a.dlStuck.count("mem") == topics })
	time.Sleep(2500 * time.Millisecond) // two more dead-letter attempts each (one a second); not a timing claim
	grown := liveHeap() - base
	t.Logf("live heap grew by %d MiB; forwarder accounts %d bytes held (budget %d MiB)", grown>>20, f.heldBytes(), f.budget>>20)
	if grown > f.budget {
		t.Fatalf("lanes waiting on a dead letter keep %d MiB of message bytes alive (accounted: %d bytes; budget %d MiB)",
			grown>>20, f.heldBytes(), f.budget>>20)
	}
}
