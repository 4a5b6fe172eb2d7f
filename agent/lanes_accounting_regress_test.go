package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// Once everything is resolved and the lanes idle, what the forwarder
// accounts must be only its running lanes: no record bytes left over, and
// lanesHeld matching the lanes that run. Mixed failures: transient (stuck
// lanes that spill and catch up), permanent (split batches, dead letters),
// per-message batch errors, headers.
func TestHeldReturnsToIdleLanesOnly(t *testing.T) {
	t.Run("plain", func(t *testing.T) { checkLaneAccounting(t, 0) })
	t.Run("drop_oldest", func(t *testing.T) { checkLaneAccounting(t, 200<<10) })
}

func checkLaneAccounting(t *testing.T, backlog int64) {
	var mu sync.Mutex
	attempts := map[string]int{}
	rnd := rand.New(rand.NewPCG(1, 2))
	s := funcSink{write: func(ctx context.Context, msgs []sink.Message) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[msgs[0].Topic]++
		n := attempts[msgs[0].Topic]
		switch {
		case n < 4 && rnd.IntN(2) == 0:
			return errors.New("broker down")
		case rnd.IntN(4) == 0:
			errs := make([]error, len(msgs))
			for i, m := range msgs {
				switch {
				case string(m.Key) == "bad":
					errs[i] = sink.Permanent(errors.New("refused"))
				case rnd.IntN(3) == 0:
					errs[i] = errors.New("partition leader moving")
				}
			}
			return &sink.BatchError{Errs: errs}
		}
		for _, m := range msgs {
			if string(m.Key) == "bad" {
				return sink.Permanent(errors.New("refused"))
			}
		}
		return nil
	}}
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: s, BatchMessages: 16, MaxBacklogBytes: backlog, BacklogPolicy: map[bool]string{true: "drop_oldest"}[backlog > 0],
		RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond}}})
	f := ta.a.fwds[0]
	const topics, each = 300, 30
	var recs [][]byte
	for r := range each {
		for i := range topics {
			key := []byte(fmt.Sprint(r))
			if (i+r)%11 == 0 {
				key = []byte("bad")
			}
			var hs []sink.Header
			for h := range r % 5 {
				hs = append(hs, sink.Header{Key: fmt.Sprintf("h%d", h), Value: []byte("v")})
			}
			recs = append(recs, appendMsg(nil, &Msg{Time: time.Now().UnixNano(), Partition: sink.NoPartition,
				Topic: fmt.Sprintf("t%d", i), Key: key, Headers: hs, Sinks: []string{"mem"}, Value: make([]byte, 100)}))
		}
	}
	for len(recs) > 0 {
		n := min(len(recs), 500)
		if _, err := ta.sp.Append(context.Background(), recs[:n]...); err != nil {
			t.Fatal(err)
		}
		recs = recs[n:]
	}
	// 9,000 records with retries, splits and dead letters: several seconds
	// under -race, the cursor moving all along (pauses under a second).
	waitCount(t, "records resolved", func() int64 { return int64(f.cursor.Acked()) }, topics*each, func() string { return forwarderState(f) })
	waitForwarder(t, f, 30*time.Second, "the lanes idle", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.lanes) <= idleLanes && f.lanesHeld == int64(len(f.lanes))*laneCost
	}, func() string { return "" })
	time.Sleep(200 * time.Millisecond)
	f.mu.Lock()
	held, lanes, n := f.held, f.lanesHeld, len(f.lanes)
	f.mu.Unlock()
	t.Logf("held %d, lanesHeld %d, %d lanes", held, lanes, n)
	if held != lanes || lanes != int64(n)*laneCost {
		t.Fatalf("after everything was resolved the forwarder accounts %d bytes held, %d of them lanes, for %d lanes (%d)",
			held, lanes, n, int64(n)*laneCost)
	}
}
