package agent

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// README guarantee 7: "A forwarder holds at most 16 MiB of what it read, one
// read past it (read buffers, ... and 12 KiB per running lane ... counted as
// held)". When running lanes (topics that were stuck and spilled) fill the
// budget, the catch-up reader refills them one pass at a time; looking at
// records only, it refilled them with up to another full budget: about
// twice the budget.
func TestCatchUpStaysInTheBudgetWhenLanesFillIt(t *testing.T) {
	s, down, delivered := downSink(300 * time.Microsecond) // back, slow but healthy
	const batch = 128
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: s, BatchMessages: batch,
		RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}}})
	f := ta.a.fwds[0]
	// First a backlog on 1,200 topics, which get stuck (their lanes spill,
	// so the reader reads past them); then one message on each of 800 more
	// topics, whose lanes push the running lanes past the budget.
	const old, each, fresh = 1200, 12, 800
	val := make([]byte, 1500)
	appendAll := func(recs [][]byte) {
		for len(recs) > 0 {
			n := min(len(recs), 500)
			if _, err := ta.sp.Append(context.Background(), recs[:n]...); err != nil {
				t.Fatal(err)
			}
			recs = recs[n:]
		}
	}
	var recs [][]byte
	for r := range each {
		for i := range old {
			recs = append(recs, appendMsg(nil, &Msg{Time: time.Now().UnixNano(), Partition: sink.NoPartition,
				Topic: fmt.Sprintf("t%d", i), Sinks: []string{"mem"}, Value: append([]byte{byte('a' + r)}, val...)}))
		}
	}
	appendAll(recs)
	waitForwarder(t, f, 60*time.Second, "the reader read the backlog", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.readUpTo == old*each
	}, func() string { return "" })
	recs = recs[:0]
	for i := range fresh {
		recs = append(recs, appendMsg(nil, &Msg{Time: time.Now().UnixNano(), Partition: sink.NoPartition,
			Topic: fmt.Sprintf("t%d", old+i), Sinks: []string{"mem"}, Value: []byte{'x'}}))
	}
	appendAll(recs)
	const total = old*each + fresh
	waitFor(t, "the lanes fill the budget", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.held > f.budget
	})
	var maxHeld, maxRecs atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			f.mu.Lock()
			h, r := f.held, f.held-f.lanesHeld
			f.mu.Unlock()
			if h > maxHeld.Load() {
				maxHeld.Store(h)
			}
			if r > maxRecs.Load() {
				maxRecs.Store(r)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	down.Store(false)
	waitDelivered(t, f, delivered, total)
	close(stop)
	<-done
	// One read past the budget: its bytes, and at worst a new lane and an
	// item for each of its records.
	oneRead := int64(f.spec.BatchBytes) + int64(f.spec.BatchMessages)*(laneCost+recordOverhead)
	t.Logf("max held %d MiB (records %d MiB); budget %d MiB, one read at most %d MiB",
		maxHeld.Load()>>20, maxRecs.Load()>>20, f.budget>>20, oneRead>>20)
	if maxHeld.Load() > f.budget+oneRead {
		t.Fatalf("the forwarder held %d MiB, past its %d MiB budget by more than one read (%d MiB)",
			maxHeld.Load()>>20, f.budget>>20, oneRead>>20)
	}
}

// waitDelivered waits until want messages were delivered, for as long as
// deliveries go on: it fails only when none was delivered for 20 s. Thousands
// of one-message lanes deliver a few thousand messages a second under -race,
// a quarter of that on a loaded 2-core machine; a stall delivers none.
func waitDelivered(t *testing.T, f *forwarder, delivered *atomic.Int64, want int64) {
	t.Helper()
	waitCount(t, "delivered", delivered.Load, want, func() string { return forwarderState(f) })
}

// waitCount waits until count() is want, for as long as the count moves: it
// fails only when it did not change for 20 s, with state() saying why. For
// work that takes a time that grows with its size (thousands of messages
// delivered), where a fixed bound fails a machine that is only slow.
func waitCount(t *testing.T, what string, count func() int64, want int64, state func() string) {
	t.Helper()
	last, moved := count(), time.Now()
	logged := time.Now()
	for n := count(); n != want; n = count() {
		if n != last {
			last, moved = n, time.Now()
		}
		if time.Since(moved) > 20*time.Second {
			t.Fatalf("%s: no change for 20 s, %d of %d: %s", what, n, want, state())
		}
		if time.Since(logged) > 5*time.Second {
			logged = time.Now()
			t.Logf("%s %d of %d: %s", what, n, want, state())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitForwarder waits for cond with a generous deadline, logging the
// forwarder's state now and then, and its state when it gives up.
func waitForwarder(t *testing.T, f *forwarder, d time.Duration, what string, cond func() bool, extra func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := time.Now()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s; %s", what, forwarderState(f), extra())
		}
		if time.Since(last) > 5*time.Second {
			last = time.Now()
			t.Logf("waiting for %s: %s; %s", what, forwarderState(f), extra())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func forwarderState(f *forwarder) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var stuck, spilled, queued, batch int
	for _, l := range f.lanes {
		if l.stuck {
			stuck++
		}
		if l.spilled {
			spilled++
		}
		queued += len(l.queue)
		if l.batch != nil {
			batch++
		}
	}
	return fmt.Sprintf("held %d KiB (lanes %d KiB) budget %d KiB, lanes %d stuck %d spilled %d (f.spilled %d) queued %d batches %d readUpTo %d floor %d acked %d",
		f.held>>10, f.lanesHeld>>10, f.budget>>10, len(f.lanes), stuck, spilled, f.spilled, queued, batch, f.readUpTo, f.floor, f.cursor.Acked())
}
