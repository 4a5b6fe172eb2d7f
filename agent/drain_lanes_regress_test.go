package agent

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// A drain (SIGTERM) must finish while the reader waits over a budget full
// of lanes: stuck topics (a sink whose writes hang until cancelled, and one
// whose dead letters cannot be written) and a corrupt record.
func TestDrainFinishesWithLanesOverTheBudget(t *testing.T) {
	hung := funcSink{write: func(ctx context.Context, msgs []sink.Message) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: hung, BatchMessages: 50,
		RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}}})
	f := ta.a.fwds[0]
	var recs [][]byte
	for i := range 3000 {
		recs = append(recs, appendMsg(nil, &Msg{Time: time.Now().UnixNano(), Partition: sink.NoPartition,
			Topic: fmt.Sprintf("t%d", i), Sinks: []string{"mem"}, Value: []byte{'x'}}))
	}
	for len(recs) > 0 {
		n := min(len(recs), 500)
		if _, err := ta.sp.Append(context.Background(), recs[:n]...); err != nil {
			t.Fatal(err)
		}
		recs = recs[n:]
	}
	waitFor(t, "the lanes fill the budget", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.held > f.budget
	})
	ta.a.RequestDrain()
	select {
	case err := <-ta.done:
		ta.done <- err
	case <-time.After(60 * time.Second):
		t.Fatalf("the drain did not finish: %s", forwarderState(f))
	}
}
