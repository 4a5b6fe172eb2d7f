package kafkaproto

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluiceio/sluice/sink"
)

// TestDrainStopsAccepting: once the agent drains (SIGTERM), a produce on an
// open connection gets the retriable NOT_ENOUGH_REPLICAS; when the drain
// ends the listener is closed.
func TestDrainStopsAccepting(t *testing.T) {
	drainTimeout = 5 * time.Second
	defer func() { drainTimeout = time.Second }()
	held := funcSink{write: func(ctx context.Context, _ []sink.Message) error { <-ctx.Done(); return ctx.Err() }}
	e := startWith(t, t.TempDir(), Options{Partitions: map[string]int32{"t": 1}}, held)
	c := dial(t, e.srv.Addr())
	if got := c.produce("t", 0, recordBatch(-1, -1, 0, 0, "before")); got.ErrorCode != 0 {
		t.Fatalf("before the drain: %v", kerr.ErrorForCode(got.ErrorCode))
	}
	stopped := make(chan struct{})
	go func() { e.stop(); close(stopped) }() // the backlog never empties: the drain lasts its timeout (5 s)
	deadline := time.Now().Add(4 * time.Second)
	var got int16
	for time.Now().Before(deadline) {
		if got = c.produce("t", 0, recordBatch(-1, -1, 0, 0, "during")).ErrorCode; got != 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got != kerr.NotEnoughReplicas.Code {
		t.Errorf("during the drain: %v, want NOT_ENOUGH_REPLICAS", kerr.ErrorForCode(got))
	}
	<-stopped
	if conn, err := net.Dial("tcp", e.srv.Addr()); err == nil {
		conn.Close()
		t.Error("listener still accepts connections after the agent stopped")
	}
	if !c.closed() {
		t.Error("open connection not closed after the agent stopped")
	}
}
