package loadgen

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluiceio/sluice/sink"
)

// TestReadKafka produces records with sluice-id headers to an in-process
// Kafka-protocol broker and reads them back.
func TestReadKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "bench-0", "bench-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	msgs, ack := runMessages("r1", 300, 7)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	recs := make([]*kgo.Record, len(msgs))
	for i, m := range msgs {
		recs[i] = &kgo.Record{Topic: m.Topic, Key: m.Key, Value: m.Value,
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("x")}, {Key: sink.IDHeader, Value: []byte(m.ID)}}}
	}
	// In batches, so that a partition holds several record batches.
	for i := 0; i < len(recs); i += 40 {
		if err := cl.ProduceSync(ctx, recs[i:min(i+40, len(recs))]...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	got, err := ReadKafka(ctx, []string{addr}, []string{"bench-0", "bench-1", "absent"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(msgs) {
		t.Fatalf("read %d records, want %d", len(got), len(msgs))
	}
	parts := map[int32]bool{}
	for _, d := range got {
		if d.Run != "r1" || d.N < 1 || d.Offset < 0 || d.Partition < 0 {
			t.Errorf("delivery %+v", d)
		}
		parts[d.Partition] = true
	}
	if len(parts) < 2 {
		t.Errorf("records in partitions %v: want a spread", parts)
	}
	if v := Verify(ack, got); !v.OK() || v.Unique != len(msgs) || v.Unexpected != 0 || v.Duplicates != 0 {
		t.Errorf("verify = %+v", v)
	}
	if got, err := ReadKafka(ctx, []string{addr}, []string{"absent"}); err != nil || len(got) != 0 {
		t.Errorf("absent topic: %v, %v", got, err)
	}
	if _, err := ReadKafka(ctx, nil, []string{"bench-0"}); !errors.Is(err, ErrNoBrokers) {
		t.Error("no brokers: no error")
	}
}
