package agent

import (
	"fmt"
	"github.com/sluiceio/sluice/spool"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Once a queue resolved a message, its status never goes back to pending.
// advance let go of the message's slot before acknowledging the spool
// cursor over it; a status read in between found neither and said
// "pending" for an acknowledged message — and a callback report rendered
// at that moment carried it (found by the model test,
// callback-after-resolution).
func TestQueueStatusNeverBackToPending(t *testing.T) {
	dir := t.TempDir()
	ta := startAgent(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q"}))
	const n = 1500
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%d\n", i)
	}
	if r := do(t, "POST", ta.url+"/v1/topics/t", "application/x-ndjson", []byte(b.String()), nil); len(r.ids) != n {
		t.Fatalf("push: %+v", r)
	}
	q := ta.a.queues[0]
	var current atomic.Uint64 // the sequence being acknowledged now
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad atomic.Value
	wg.Add(1)
	go func() {
		defer wg.Done()
		seen := uint64(0) // the last sequence seen delivered
		for {
			select {
			case <-stop:
				return
			default:
			}
			seq := current.Load()
			if seq == 0 {
				continue
			}
			st := q.seqState(spool.ID{Epoch: ta.sp.Epoch(), Seq: seq})
			if st == "delivered" {
				seen = seq
			} else if seen == seq {
				bad.Store(fmt.Sprintf("message %d: status %q after delivered", seq, st))
				return
			}
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for acked := 0; acked < n && time.Now().Before(deadline) && bad.Load() == nil; {
		ls := q.take(1, time.Minute)
		if len(ls) == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		r, ok := q.qlog.parseReceipt(ls[0].receipt)
		if !ok {
			t.Fatal("own receipt does not parse")
		}
		current.Store(ls[0].e.seq)
		if _, err := q.ack([]receipt{r}); err != nil {
			t.Fatal(err)
		}
		acked++
	}
	close(stop)
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
}
