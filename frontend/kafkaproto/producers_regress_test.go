package kafkaproto

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluiceio/sluice/agent"
)

// The producer table is bounded (MaxProducers, LRU), but a producer whose
// batch is being spooled (its lock held over Accept) is not evicted by
// other producers' batches meanwhile: a retry of that batch on a new
// connection (what a client does after a request timeout) waits for the
// original and is answered as its duplicate, not spooled beside it.
func TestProducerInUseIsNotEvicted(t *testing.T) {
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	var calls, appended atomic.Int64
	acc := funcAcceptor{accept: func(msgs []agent.Message) (agent.Accepted, error) {
		n := calls.Add(1)
		for _, m := range msgs {
			if string(m.Value) == "p-seq0" {
				appended.Add(1)
			}
		}
		if n == 1 {
			entered <- struct{}{}
			<-gate // the disk is slow for the first append
		}
		return agent.Accepted{IDs: make([]string, len(msgs)), First: uint64(n * 100)}, nil
	}}
	srv := serveWith(t, acc, Options{MaxProducers: 2, Partitions: map[string]int32{"t": 1}})
	const p, q, r = 1001, 1002, 1003

	var wg sync.WaitGroup
	var firstResp kmsg.ProduceResponseTopicPartition
	c1 := dial(t, srv.Addr())
	wg.Add(1)
	go func() {
		defer wg.Done()
		req := produceReq("t", 0, -1, recordBatch(p, 0, 0, 0, "p-seq0"))
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		c1.corr++
		c1.send(frame(req, c1.corr))
		c1.read(resp, c1.corr)
		firstResp = resp.Topics[0].Partitions[0]
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("first append never started")
	}
	// Two other producers come and go: the table (2) evicts p, in use.
	c2 := dial(t, srv.Addr())
	for _, pid := range []int64{q, r} {
		if got := c2.produce("t", 0, recordBatch(pid, 0, 0, 0, "other")); got.ErrorCode != 0 {
			t.Fatalf("producer %d: %v", pid, kerr.ErrorForCode(got.ErrorCode))
		}
	}
	// p's client timed out and retries its batch on a new connection.
	c3 := dial(t, srv.Addr())
	retry := make(chan kmsg.ProduceResponseTopicPartition, 1)
	go func() {
		retry <- c3.produce("t", 0, recordBatch(p, 0, 0, 0, "p-seq0"))
	}()
	var second kmsg.ProduceResponseTopicPartition
	select {
	case second = <-retry:
		// answered while the original is still being spooled: the
		// producer's lock did not serialise the two
	case <-time.After(500 * time.Millisecond):
	}
	close(gate)
	wg.Wait()
	if second.Partition == 0 && second.BaseOffset == 0 && second.ErrorCode == 0 {
		second = <-retry
	}
	t.Logf("original: err %d offset %d; retry: err %d offset %d", firstResp.ErrorCode, firstResp.BaseOffset, second.ErrorCode, second.BaseOffset)
	if n := appended.Load(); n != 1 {
		t.Errorf("batch (producer %d, epoch 0, sequence 0) appended %d times, want once", p, n)
	}
}

// Kafka keeps a producer's epoch per partition: a batch of epoch 0 for a
// partition that has only seen epoch 0 is in sequence, even after epoch 1
// reached another partition (the Java client bumps an idempotent
// producer's epoch locally, KIP-360, while batches of other partitions are
// still on their way).
func TestStaleEpochIsPerPartition(t *testing.T) {
	e := start(t, t.TempDir(), Options{Partitions: map[string]int32{"t": 2}})
	c := dial(t, e.srv.Addr())
	pid := initProducer(t, c)
	if got := c.produce("t", 1, recordBatch(pid, 0, 0, 0, "b0")); got.ErrorCode != 0 {
		t.Fatalf("partition 1 epoch 0: %v", kerr.ErrorForCode(got.ErrorCode))
	}
	if got := c.produce("t", 0, recordBatch(pid, 1, 0, 0, "a1")); got.ErrorCode != 0 {
		t.Fatalf("partition 0 epoch 1: %v", kerr.ErrorForCode(got.ErrorCode))
	}
	if got := c.produce("t", 1, recordBatch(pid, 0, 1, 0, "b1")); got.ErrorCode != 0 {
		t.Errorf("partition 1, epoch 0, next sequence: %v (Kafka: accepted, the partition's epoch is 0)", kerr.ErrorForCode(got.ErrorCode))
	}
}
