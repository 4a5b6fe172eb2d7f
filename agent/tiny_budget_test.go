package agent

import (
	"context"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// The read-ahead budget counts what a held record costs, not its bytes
// alone: a backlog of one-byte messages behind a hung sink (the model's
// flood.tiny, then a restart) held ~150,000 decoded items, 60 MiB of live
// heap against a 16 MiB budget, because each item (its struct, its id
// string, its queue slot) was not counted.
func TestTinyMessagesStayInTheReadAheadBudget(t *testing.T) {
	f, grown := readAheadGrowth(t, 150_000, func(int) *Msg {
		return &Msg{Time: time.Now().UnixNano(), Partition: sink.NoPartition, Topic: "tiny", Sinks: []string{"mem"}, Value: []byte{'x'}}
	})
	if grown > f.budget+f.budget/2 {
		t.Fatalf("a backlog of one-byte messages keeps %d MiB alive (accounted %d MiB, budget %d MiB)", grown>>20, f.heldBytes()>>20, f.budget>>20)
	}
}

// readAheadGrowth appends n messages made by msg (1,000 per append) for a
// sink whose writes hang, waits until the forwarder's reader filled its
// budget or read everything, and returns the forwarder and how much the
// live heap grew.
func readAheadGrowth(t *testing.T, n int, msg func(i int) *Msg) (*forwarder, int64) {
	t.Helper()
	hung := funcSink{write: func(ctx context.Context, msgs []sink.Message) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: hung}}})
	f := ta.a.fwds[0]
	base := liveHeap()
	recs := make([][]byte, 0, 1000)
	for i := 0; i < n; {
		recs = recs[:0]
		for ; len(recs) < 1000 && i < n; i++ {
			recs = append(recs, appendMsg(nil, msg(i)))
		}
		if _, err := ta.sp.Append(context.Background(), recs...); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the reader filled its budget or read everything", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.held > f.budget || f.readUpTo == uint64(n)
	})
	grown := liveHeap() - base
	t.Logf("live heap grew by %d MiB; forwarder accounts %d MiB held (budget %d MiB)", grown>>20, f.heldBytes()>>20, f.budget>>20)
	return f, grown
}
