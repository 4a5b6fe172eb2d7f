package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluiceio/sluice/sink"
)

// BenchmarkWrite compares the sink with a plain kafka-go Writer using the
// same settings (acks all, BatchTimeout 1ms, batch size 1000, 1 MiB batch
// bytes, one attempt, no compression, murmur2 keys) producing the same
// messages (1000 × 1 KiB, key, header, sluice-id header), against one
// kfake broker that acknowledges without storing.
func BenchmarkWrite(b *testing.B) {
	_, addr := newCluster(b, kfake.SeedTopics(6, "bench"), kfake.BlackholeProduce())
	const n, size = 1000, 1024
	msgs := make([]sink.Message, n)
	for i := range msgs {
		msgs[i] = sink.Message{
			ID:        fmt.Sprintf("bench-%08d", i),
			Topic:     "bench",
			Key:       []byte(fmt.Sprintf("key-%d", i%100)),
			Value:     make([]byte, size),
			Headers:   []sink.Header{{Key: "h", Value: []byte("v")}},
			Time:      time.Now(),
			Partition: sink.NoPartition,
		}
	}
	ctx := context.Background()

	b.Run("sink", func(b *testing.B) {
		w := newWriter(b, addr, Options{Name: "bench"})
		mustWrite(b, w, msgs)
		b.ReportAllocs()
		b.SetBytes(n * size)
		for b.Loop() {
			if err := w.Write(ctx, msgs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
	})

	b.Run("kafka-go", func(b *testing.B) {
		tr := &kafkago.Transport{}
		kw := &kafkago.Writer{
			Addr:         kafkago.TCP(addr),
			Balancer:     kafkago.Murmur2Balancer{},
			RequiredAcks: kafkago.RequireAll,
			MaxAttempts:  1,
			BatchSize:    n,
			BatchBytes:   DefaultMaxMessageBytes,
			BatchTimeout: time.Millisecond,
			ReadTimeout:  DefaultWriteTimeout,
			WriteTimeout: DefaultWriteTimeout,
			Transport:    tr,
		}
		b.Cleanup(func() {
			kw.Close()
			tr.CloseIdleConnections()
		})
		kmsgs := make([]kafkago.Message, n)
		for i, m := range msgs {
			kmsgs[i] = kafkago.Message{
				Topic: m.Topic, Key: m.Key, Value: m.Value, Time: m.Time,
				Headers: []kafkago.Header{{Key: "h", Value: []byte("v")}, {Key: sink.IDHeader, Value: []byte(m.ID)}},
			}
		}
		if err := kw.WriteMessages(ctx, kmsgs...); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.SetBytes(n * size)
		for b.Loop() {
			if err := kw.WriteMessages(ctx, kmsgs...); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
	})
}
