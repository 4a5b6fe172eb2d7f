package agent

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// The read-ahead budget charges the headers a record is decoded into, not
// only the record's bytes: decoding allocates one sink.Header (40 bytes, in
// a slice grown by append) and a key string per header, for a few bytes of
// record each, and POST /v1/messages takes any number of headers per
// message. A backlog of small header-heavy messages behind a hung sink kept
// 177 MiB alive against the 16 MiB budget.
func TestHeaderHeavyMessagesStayInTheReadAheadBudget(t *testing.T) {
	hung := funcSink{write: func(ctx context.Context, msgs []sink.Message) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: hung}}})
	f := ta.a.fwds[0]
	base := liveHeap()
	const n, headers = 20_000, 200
	hs := make([]sink.Header, headers)
	for i := range hs {
		hs[i] = sink.Header{Key: fmt.Sprintf("h%03d", i)} // 6 bytes stored, ~50 decoded
	}
	recs := make([][]byte, 0, 500)
	for i := 0; i < n; i += 500 {
		recs = recs[:0]
		for range 500 {
			recs = append(recs, appendMsg(nil, &Msg{Time: time.Now().UnixNano(), Partition: sink.NoPartition,
				Topic: "hdr", Sinks: []string{"mem"}, Headers: hs, Value: []byte{'x'}}))
		}
		if _, err := ta.sp.Append(context.Background(), recs...); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the reader filled its budget or read everything", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.held > f.budget || f.readUpTo == n
	})
	grown := liveHeap() - base
	t.Logf("live heap grew by %d MiB; forwarder accounts %d MiB held (budget %d MiB)", grown>>20, f.heldBytes()>>20, f.budget>>20)
	// The reader stops once it is over the budget: at most one read past
	// it, here one read of 500 messages of 200 decoded headers each.
	if grown > 2*f.budget {
		t.Fatalf("a backlog of small header-heavy messages keeps %d MiB alive (accounted %d MiB, budget %d MiB)", grown>>20, f.heldBytes()>>20, f.budget>>20)
	}
}
