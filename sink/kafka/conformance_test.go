package kafka

import (
	"context"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/sinktest"
)

func TestConformance(t *testing.T) {
	var (
		addr    string
		stalled atomic.Bool
	)
	sinktest.Run(t, sinktest.Harness{
		New: func(t *testing.T) sink.Sink {
			var c *kfake.Cluster
			c, addr = newCluster(t, kfake.SeedTopics(3, sinktest.TopicA, sinktest.TopicB))
			stalled.Store(false)
			c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				return nil, nil, stalled.Load() // handled without an answer: the request hangs
			})
			w, err := New(Options{Brokers: []string{addr}, WriteTimeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			return w
		},
		Read: func(t *testing.T) []sink.Message {
			var out []sink.Message
			for _, r := range readAll(t, addr, sinktest.TopicA, sinktest.TopicB) {
				m := sink.Message{Topic: r.Topic, Key: r.Key, Value: r.Value, Time: r.Timestamp, Partition: r.Partition}
				for _, h := range r.Headers {
					if h.Key == sink.IDHeader {
						m.ID = string(h.Value)
					}
					m.Headers = append(m.Headers, sink.Header{Key: h.Key, Value: h.Value})
				}
				out = append(out, m)
			}
			return out
		},
		Stall: func(t *testing.T) func() {
			stalled.Store(true)
			return func() { stalled.Store(false) }
		},
		Caps: sinktest.Caps{EmptyKey: true, Partition: true, TimePrecision: time.Millisecond, OrderPerKey: true},
	})
}

// readAll returns every record of topics, up to their end offsets now,
// ordered by topic, partition and offset.
func readAll(t *testing.T, addr string, topics ...string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()

	meta := kmsg.NewPtrMetadataRequest()
	for _, topic := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		meta.Topics = append(meta.Topics, rt)
	}
	mresp, err := meta.RequestWith(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	lo := kmsg.NewPtrListOffsetsRequest()
	for _, mt := range mresp.Topics {
		if err := kerr.ErrorForCode(mt.ErrorCode); err != nil {
			t.Fatalf("metadata %s: %v", *mt.Topic, err)
		}
		lt := kmsg.NewListOffsetsRequestTopic()
		lt.Topic = *mt.Topic
		for _, p := range mt.Partitions {
			lp := kmsg.NewListOffsetsRequestTopicPartition()
			lp.Partition = p.Partition
			lp.Timestamp = -1 // end
			lt.Partitions = append(lt.Partitions, lp)
		}
		lo.Topics = append(lo.Topics, lt)
	}
	lresp, err := lo.RequestWith(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	ends := map[string]map[int32]int64{}
	start := map[string]map[int32]kgo.Offset{}
	want := 0
	for _, lt := range lresp.Topics {
		ends[lt.Topic], start[lt.Topic] = map[int32]int64{}, map[int32]kgo.Offset{}
		for _, lp := range lt.Partitions {
			if err := kerr.ErrorForCode(lp.ErrorCode); err != nil {
				t.Fatalf("list offsets %s[%d]: %v", lt.Topic, lp.Partition, err)
			}
			if lp.Offset > 0 {
				ends[lt.Topic][lp.Partition] = lp.Offset
				start[lt.Topic][lp.Partition] = kgo.NewOffset().AtStart()
				want += int(lp.Offset)
			}
		}
	}
	if want == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(start), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for len(recs) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", len(recs), want)
		}
		recs = append(recs, fs.Records()...)
	}
	sort.Slice(recs, func(i, j int) bool {
		a, b := recs[i], recs[j]
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		return a.Offset < b.Offset
	})
	return recs
}
