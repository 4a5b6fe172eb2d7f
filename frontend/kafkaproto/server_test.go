package kafkaproto

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluiceio/sluice/sink"
)

func newClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.ProducerLinger(time.Millisecond),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RetryTimeout(20 * time.Second)}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestProduceCodecs produces with franz-go (idempotent, the default) with
// each codec to explicit partitions and checks what the sink got: topic,
// partition as chosen, key (nil kept), value, headers, timestamp, and
// monotonic local offsets.
func TestProduceCodecs(t *testing.T) {
	e := start(t, t.TempDir(), Options{Partitions: map[string]int32{"orders": 3}})
	ts := time.UnixMilli(1700000000123)
	total := 0
	for codec, cc := range []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()} {
		cl := newClient(t, e.srv.Addr(), kgo.ProducerBatchCompression(cc))
		var recs []*kgo.Record
		for i := range 30 {
			r := &kgo.Record{Topic: "orders", Partition: int32(i % 3), Value: fmt.Appendf(nil, "v-%d-%d", codec, i), Timestamp: ts,
				Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("x")}}}
			if i%2 == 0 {
				r.Key = fmt.Appendf(nil, "k%d", i)
			}
			recs = append(recs, r)
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatalf("codec %v: %v", codec, err)
		}
		last := map[int32]int64{}
		for _, r := range recs {
			if r.Offset <= last[r.Partition] && last[r.Partition] != 0 {
				t.Errorf("partition %d: offset %d after %d", r.Partition, r.Offset, last[r.Partition])
			}
			last[r.Partition] = r.Offset
		}
		total += len(recs)
	}
	got := e.sink.wait(t, total)
	if len(got) != total {
		t.Fatalf("sink got %d messages, want %d", len(got), total)
	}
	for _, m := range got {
		var codec, i int
		if _, err := fmt.Sscanf(string(m.Value), "v-%d-%d", &codec, &i); err != nil {
			t.Fatalf("value %q: %v", m.Value, err)
		}
		if m.Partition != int32(i%3) || m.Topic != "orders" {
			t.Errorf("%s: topic %s partition %d, want orders %d", m.Value, m.Topic, m.Partition, i%3)
		}
		if (i%2 == 0) != (m.Key != nil) || (m.Key != nil && string(m.Key) != fmt.Sprintf("k%d", i)) {
			t.Errorf("%s: key %q", m.Value, m.Key)
		}
		if len(m.Headers) != 1 || m.Headers[0].Key != "h" || string(m.Headers[0].Value) != "x" {
			t.Errorf("%s: headers %v", m.Value, m.Headers)
		}
		if !m.Time.Equal(ts) {
			t.Errorf("%s: time %v, want %v", m.Value, m.Time, ts)
		}
	}
}

// TestDefaultPartitioning: a topic without a configured count has one
// partition, and its messages reach the sink without an explicit one.
func TestDefaultPartitioning(t *testing.T) {
	e := start(t, t.TempDir(), Options{})
	cl := newClient(t, e.srv.Addr(), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "clicks", Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got := e.sink.wait(t, 1)
	if got[0].Partition != sink.NoPartition {
		t.Fatalf("partition %d, want NoPartition", got[0].Partition)
	}
}

// TestUnroutedTopic: a topic no sink takes fails (after kgo's retries of
// UNKNOWN_TOPIC_OR_PARTITION).
func TestUnroutedTopic(t *testing.T) {
	e := start(t, t.TempDir(), Options{}, "orders")
	cl := newClient(t, e.srv.Addr(), kgo.UnknownTopicRetries(1), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "other", Value: []byte("v")}).FirstErr()
	if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("err %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
}

// TestTransactionsRefused: a transactional producer fails fast with an
// authorization error.
func TestTransactionsRefused(t *testing.T) {
	e := start(t, t.TempDir(), Options{})
	cl := newClient(t, e.srv.Addr(), kgo.TransactionalID("tx"), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := cl.BeginTransaction() // kgo initializes the producer id here or at the first produce
	if err == nil {
		err = cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("v")}).FirstErr()
	}
	if err == nil || !strings.Contains(err.Error(), "TRANSACTIONAL_ID_AUTHORIZATION_FAILED") {
		t.Fatalf("err %v, want TRANSACTIONAL_ID_AUTHORIZATION_FAILED", err)
	}
}
