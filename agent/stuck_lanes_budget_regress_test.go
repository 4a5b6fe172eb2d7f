package agent

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// Stuck lanes count against the read-ahead budget: a lane that retries a
// failed batch keeps its goroutine, its lane struct and its (evicted) item
// until it moves, one lane per topic. With a sink that fails every write
// transiently (a broker down), one one-byte message for each of 10,000
// topics kept 116 MiB alive against the 16 MiB budget while the forwarder
// accounted ~0 bytes. Now lanes are charged to the budget while they run,
// and the reader stops starting them once they fill it.
func TestStuckTopicsStayInTheReadAheadBudget(t *testing.T) {
	down := funcSink{write: func(ctx context.Context, msgs []sink.Message) error {
		return errors.New("broker down")
	}}
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: down,
		RetryMin: 200 * time.Millisecond, RetryMax: time.Second}}})
	f := ta.a.fwds[0]
	inUse := func() int64 {
		var ms runtime.MemStats
		for range 3 {
			runtime.GC()
		}
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc + ms.StackInuse)
	}
	base := inUse()
	const topics = 10_000
	recs := make([][]byte, 0, 1000)
	for i := 0; i < topics; i += 1000 {
		recs = recs[:0]
		for j := range 1000 {
			recs = append(recs, appendMsg(nil, &Msg{Time: time.Now().UnixNano(), Partition: sink.NoPartition,
				Topic: fmt.Sprintf("t%d", i+j), Sinks: []string{"mem"}, Value: []byte{'x'}}))
		}
		if _, err := ta.sp.Append(context.Background(), recs...); err != nil {
			t.Fatal(err)
		}
	}
	state := func() (read uint64, lanes, stuck int, over bool) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, l := range f.lanes {
			if l.stuck {
				stuck++
			}
		}
		return f.readUpTo, len(f.lanes), stuck, f.held > f.budget
	}
	// Settled: every lane stuck, and either everything read or the reader
	// waiting over the budget (nothing read between two looks).
	var read uint64
	var lanes, stuck int
	waitFor(t, "the forwarder settled", func() bool {
		r0, _, _, _ := state()
		time.Sleep(300 * time.Millisecond)
		var over bool
		read, lanes, stuck, over = state()
		return stuck == lanes && (read == topics || over && read == r0)
	})
	grown := inUse() - base
	t.Logf("%d of %d topics read, %d stuck lanes, %d goroutines; heap+stacks grew by %d MiB; forwarder accounts %d MiB held (budget %d MiB)",
		read, topics, stuck, runtime.NumGoroutine(), grown>>20, f.heldBytes()>>20, f.budget>>20)
	if read == topics {
		t.Fatalf("the reader started a lane for each of %d stuck topics", topics)
	}
	if grown > 2*f.budget {
		t.Fatalf("%d stuck topics of one-byte messages keep %d MiB alive (accounted %d MiB, budget %d MiB)",
			stuck, grown>>20, f.heldBytes()>>20, f.budget>>20)
	}
}

// Lanes charged to the budget must not keep the catch-up reader from
// refilling them: once a sink that failed for thousands of topics is back,
// their lanes (spilled while stuck) wait for the catch-up reader, and only
// a lane that caught up ends and gives its charge back. Everything pushed
// is delivered.
func TestManyStuckTopicsAllCatchUpWhenTheSinkIsBack(t *testing.T) {
	s, down, delivered := downSink(0)
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: s,
		RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}}})
	f := ta.a.fwds[0]
	const topics, each = 3000, 3
	recs := make([][]byte, 0, 1000)
	for r := range each {
		for i := 0; i < topics; i += 1000 {
			recs = recs[:0]
			for j := range 1000 {
				recs = append(recs, appendMsg(nil, &Msg{Time: time.Now().UnixNano(), Partition: sink.NoPartition,
					Topic: fmt.Sprintf("t%d", i+j), Sinks: []string{"mem"}, Value: []byte{byte('a' + r)}}))
			}
			if _, err := ta.sp.Append(context.Background(), recs...); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "the lanes fill the budget", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.held > f.budget
	})
	down.Store(false)
	waitDelivered(t, f, delivered, topics*each)
}

// One read may start a lane per record: with a large BATCH_MESSAGES, one
// read of one-byte messages on new topics would start thousands of lanes
// past the budget at once. Reads take no more records than the budget has
// room for lanes.
func TestOneReadStartsNoMoreLanesThanTheBudgetHolds(t *testing.T) {
	hung := funcSink{write: func(ctx context.Context, msgs []sink.Message) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: hung, BatchMessages: 20_000}}})
	f := ta.a.fwds[0]
	const topics = 20_000
	recs := make([][]byte, 0, topics)
	for i := range topics {
		recs = append(recs, appendMsg(nil, &Msg{Time: time.Now().UnixNano(), Partition: sink.NoPartition,
			Topic: fmt.Sprintf("t%d", i), Sinks: []string{"mem"}, Value: []byte{'x'}}))
	}
	if _, err := ta.sp.Append(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
	var lanes int
	waitFor(t, "the reader stopped over the budget", func() bool {
		f.mu.Lock()
		r0 := f.readUpTo
		f.mu.Unlock()
		time.Sleep(300 * time.Millisecond)
		f.mu.Lock()
		defer f.mu.Unlock()
		lanes = len(f.lanes)
		return f.held > f.budget && f.readUpTo == r0
	})
	if max := 2 * int(f.budget/laneCost); lanes > max {
		t.Fatalf("%d lanes started, the budget holds %d: one read started them past it", lanes, max/2)
	}
}

// downSink is a sink whose broker is down until down is cleared; then each
// write takes slow and counts its messages in delivered.
func downSink(slow time.Duration) (s funcSink, down *atomic.Bool, delivered *atomic.Int64) {
	down, delivered = new(atomic.Bool), new(atomic.Int64)
	down.Store(true)
	s = funcSink{write: func(ctx context.Context, msgs []sink.Message) error {
		if down.Load() {
			return errors.New("broker down")
		}
		time.Sleep(slow)
		delivered.Add(int64(len(msgs)))
		return nil
	}}
	return s, down, delivered
}
