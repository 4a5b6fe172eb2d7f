package kafkaproto

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluiceio/sluice/agent"
	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/spool"
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
	// Results come in the order the records finished, not as given.
	for _, r := range cl.ProduceSync(context.Background(), small, large) {
		switch {
		case r.Record == large && r.Err == nil:
			t.Errorf("the oversized record was accepted")
		case r.Record == small && r.Err != nil:
			t.Fatalf("the small record on partition 0 failed: %v", r.Err)
		}
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

// TestFullSinkDoesNotBlockOtherTopics: sinks are isolated, and a dead
// optional sink hits its own limit, never costing another topic's pushes.
// Topic x goes to an optional sink that is down and at its backlog cap
// (policy reject); topic y goes only to a healthy sink. A Produce request
// carrying a batch for each spools y's batch and answers x's with
// NOT_ENOUGH_REPLICAS: a producer's request carries whatever partitions
// have data, so failing y with x's "spool full" would hold y back for as
// long as x's sink is down.
func TestFullSinkDoesNotBlockOtherTopics(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	dl, err := spool.Open(filepath.Join(dir, "deadletter"), spool.Options{Logger: quiet(), FullPolicy: spool.DropOldest})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Listen(Options{Addr: "127.0.0.1:0", StateDir: filepath.Join(dir, "spool", "kafka"), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	healthy := newMemSink()
	down := funcSink{write: func(ctx context.Context, _ []sink.Message) error {
		return errors.New("upstream down") // transient: retried
	}}
	a, err := agent.New(agent.Options{
		Spool: sp, DeadLetter: dl, Listen: "127.0.0.1:0", AdminListen: "-", Logger: quiet(), DrainTimeout: drainTimeout,
		Sinks: []agent.SinkSpec{
			{Name: "main", Sink: healthy.sink(), Topics: []string{"y"}, RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond},
			{Name: "dr", Sink: down, Topics: []string{"x"}, MaxBacklogBytes: 4 << 10, BacklogPolicy: "reject", RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond},
		},
		FrontEnds: []agent.FrontEnd{srv},
	})
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-a.Ready()

	c := dial(t, srv.Addr())
	// Fill x's sink backlog to its cap.
	for i := 0; ; i++ {
		p := c.produce("x", 0, recordBatch(-1, -1, 0, 0, string(make([]byte, 1000))))
		if p.ErrorCode == kerr.NotEnoughReplicas.Code {
			break
		}
		if p.ErrorCode != 0 || i > 100 {
			t.Fatalf("filling x: %v after %d batches", kerr.ErrorForCode(p.ErrorCode), i)
		}
	}
	req := produceReq("x", 0, -1, recordBatch(-1, -1, 0, 0, "x-more"))
	addPartition(req, "y", 0, recordBatch(-1, -1, 0, 0, "y-innocent"))
	got := produceCodes(t, srv.Addr(), req)
	if got["x"][0] != kerr.NotEnoughReplicas.Code {
		t.Errorf("x (its sink at its cap): %v, want NOT_ENOUGH_REPLICAS", kerr.ErrorForCode(got["x"][0]))
	}
	if got["y"][0] != 0 {
		t.Fatalf("y (a healthy sink) got %v because of x's sink", kerr.ErrorForCode(got["y"][0]))
	}
	healthy.wait(t, 1)
}

// TestAcceptSpoolFullSparesOtherTopics: a topic's sink that reaches its
// cap between the listener's check and Accept fails that topic's batches
// only.
func TestAcceptSpoolFullSparesOtherTopics(t *testing.T) {
	srv := serveWith(t, funcAcceptor{accept: func(msgs []agent.Message) (agent.Accepted, error) {
		for _, m := range msgs {
			if m.Topic == "x" {
				return agent.Accepted{}, fmt.Errorf("%w: backlog of sink dr is at its cap", agent.ErrSpoolFull)
			}
		}
		return agent.Accepted{IDs: make([]string, len(msgs)), First: 1}, nil
	}}, Options{})
	req := produceReq("x", 0, -1, recordBatch(-1, -1, 0, 0, "x"))
	addPartition(req, "y", 0, recordBatch(-1, -1, 0, 0, "y"))
	got := produceCodes(t, srv.Addr(), req)
	if got["x"][0] != kerr.NotEnoughReplicas.Code || got["y"][0] != 0 {
		t.Errorf("x: %v (want NOT_ENOUGH_REPLICAS), y: %v (want none)", kerr.ErrorForCode(got["x"][0]), kerr.ErrorForCode(got["y"][0]))
	}
}
