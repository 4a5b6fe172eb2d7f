package kafkaproto

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluiceio/sluice/agent"
)

// produceCodes sends req and returns each topic's partitions' error codes.
func produceCodes(t *testing.T, addr string, req *kmsg.ProduceRequest) map[string]map[int32]int16 {
	t.Helper()
	c := dial(t, addr)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	c.request(req, resp)
	got := map[string]map[int32]int16{}
	for _, tp := range resp.Topics {
		got[tp.Topic] = map[int32]int16{}
		for _, p := range tp.Partitions {
			got[tp.Topic][p.Partition] = p.ErrorCode
		}
	}
	return got
}

// addPartition adds a partition's batch to req, in a new topic entry when
// the topic is not the last one's.
func addPartition(req *kmsg.ProduceRequest, topic string, partition int32, batch []byte) {
	if n := len(req.Topics); n == 0 || req.Topics[n-1].Topic != topic {
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		req.Topics = append(req.Topics, rt)
	}
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, batch
	rt := &req.Topics[len(req.Topics)-1]
	rt.Partitions = append(rt.Partitions, rp)
}

// TestOversizedRecordFailsOnlyItsBatch: in Kafka every partition of a
// Produce request succeeds or fails on its own, and a record over
// SLUICE_MAX_MESSAGE_BYTES fails its batch (MESSAGE_TOO_LARGE, which
// clients do not retry). A batch for another partition of the same request
// is innocent: it is spooled and acknowledged, not failed with its
// neighbour's error (its records would be lost to the application).
func TestOversizedRecordFailsOnlyItsBatch(t *testing.T) {
	e := start(t, t.TempDir(), Options{Partitions: map[string]int32{"t": 2}})
	big := string(make([]byte, 1<<20+1)) // over the agent's 1 MiB MaxMessageBytes
	req := produceReq("t", 0, -1, recordBatch(-1, -1, 0, 0, "innocent"))
	addPartition(req, "t", 1, recordBatch(-1, -1, 0, 0, big))
	got := produceCodes(t, e.srv.Addr(), req)["t"]
	if got[1] != kerr.MessageTooLarge.Code {
		t.Errorf("oversized batch: %v, want MESSAGE_TOO_LARGE", kerr.ErrorForCode(got[1]))
	}
	if got[0] != 0 {
		t.Fatalf("the innocent batch of partition 0 got %v", kerr.ErrorForCode(got[0]))
	}
	e.sink.wait(t, 1)
}

// TestOversizedRecordSparesNeighboursFranzGo is the same with an unchanged
// franz-go producer whose batch limit is above sluice's message limit (as
// for a topic with a larger max.message.bytes): the small record produced
// beside the large one is acknowledged, the large one fails.
func TestOversizedRecordSparesNeighboursFranzGo(t *testing.T) {
	e := start(t, t.TempDir(), Options{Partitions: map[string]int32{"t": 2}})
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.srv.Addr()), kgo.DefaultProduceTopic("t"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(4<<20),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	small := &kgo.Record{Partition: 0, Value: []byte("innocent")}
	large := &kgo.Record{Partition: 1, Value: make([]byte, 1<<20+1)}
	res := cl.ProduceSync(context.Background(), small, large)
	if res[1].Err == nil {
		t.Errorf("the oversized record was accepted")
	}
	if res[0].Err != nil {
		t.Fatalf("the small record on partition 0 failed: %v", res[0].Err)
	}
}

// TestAcceptPartitionErrorSparesNeighbours: when Accept itself refuses a
// request for one batch's sake (a message too large, a topic refused), the
// batches are spooled one by one and only the one at fault fails.
func TestAcceptPartitionErrorSparesNeighbours(t *testing.T) {
	var calls atomic.Int32
	srv := serveWith(t, funcAcceptor{maxMessage: 1 << 30, accept: func(msgs []agent.Message) (agent.Accepted, error) {
		calls.Add(1)
		for _, m := range msgs {
			if string(m.Value) == "bad" {
				return agent.Accepted{}, fmt.Errorf("%w: test", agent.ErrTooLarge)
			}
		}
		return agent.Accepted{IDs: make([]string, len(msgs)), First: 1}, nil
	}}, Options{Partitions: map[string]int32{"t": 3}})
	req := produceReq("t", 0, -1, recordBatch(-1, -1, 0, 0, "good"))
	addPartition(req, "t", 1, recordBatch(-1, -1, 0, 0, "bad"))
	addPartition(req, "t", 2, recordBatch(-1, -1, 0, 0, "good too"))
	got := produceCodes(t, srv.Addr(), req)["t"]
	want := map[int32]int16{0: 0, 1: kerr.MessageTooLarge.Code, 2: 0}
	for p, code := range want {
		if got[p] != code {
			t.Errorf("partition %d: %v, want %v", p, kerr.ErrorForCode(got[p]), kerr.ErrorForCode(code))
		}
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("%d Accept calls, want 4 (the request, then each batch)", n)
	}
}
