package rabbitmq

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluiceio/sluice/internal/fstype"
	"github.com/sluiceio/sluice/sink"
)

// BenchmarkWrite compares the sink with the plain amqp091-go client
// publishing the same messages (1000 × 1 KiB, one header, sluice-id and
// sluice-key headers, message-id) with the same acknowledgements: a
// channel in confirm mode, mandatory with returns drained, persistent
// delivery, waiting for every confirm (DeferredConfirmation.WaitContext),
// to the same durable classic queue of the same node, in the same run. The
// queue is purged between iterations, outside the timer, so both always
// write to an empty queue. Persistent messages on a durable queue are
// confirmed after the node fsynced them: the disk is part of what is
// measured (its file system is printed).
func BenchmarkWrite(b *testing.B) {
	srv := node(b)
	const queue, n, size = "bench", 1000, 1024
	srv.DeclareQueue(b, queue, nil)
	b.Logf("node data on %s", fstype.Name(srv.Dir()))
	admin, err := srv.Dial(b).Channel()
	if err != nil {
		b.Fatal(err)
	}
	purge := func() {
		b.StopTimer()
		if _, err := admin.QueuePurge(queue, false); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	msgs := make([]sink.Message, n)
	for i := range msgs {
		msgs[i] = sink.Message{
			ID:        fmt.Sprintf("bench-%08d", i),
			Topic:     queue,
			Key:       fmt.Appendf(nil, "key-%d", i%100),
			Value:     make([]byte, size),
			Headers:   []sink.Header{{Key: "h", Value: []byte("v")}},
			Time:      time.Now(),
			Partition: sink.NoPartition,
		}
	}
	ctx := context.Background()

	b.Run("sink", func(b *testing.B) {
		w := newWriter(b, Options{Name: "bench"})
		mustWrite(b, w, msgs)
		b.ReportAllocs()
		b.SetBytes(n * size)
		for b.Loop() {
			purge()
			if err := w.Write(ctx, msgs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
	})

	b.Run("amqp091-go", func(b *testing.B) {
		conn := srv.Dial(b)
		ch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		if err := ch.Confirm(false); err != nil {
			b.Fatal(err)
		}
		returns := ch.NotifyReturn(make(chan amqp.Return, 256))
		returned := make(chan int, 1)
		go func() {
			c := 0
			for range returns {
				c++
			}
			returned <- c
		}()
		pubs := make([]amqp.Publishing, n)
		for i, m := range msgs {
			pubs[i] = amqp.Publishing{
				Headers:      amqp.Table{"h": "v", sink.IDHeader: m.ID, KeyHeader: string(m.Key)},
				DeliveryMode: amqp.Persistent,
				MessageId:    m.ID,
				Timestamp:    m.Time,
				Body:         m.Value,
			}
		}
		dcs := make([]*amqp.DeferredConfirmation, n)
		publishAll := func() {
			for i := range pubs {
				dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, pubs[i])
				if err != nil {
					b.Fatal(err)
				}
				dcs[i] = dc
			}
			wctx, cancel := context.WithTimeout(ctx, DefaultWriteTimeout)
			defer cancel()
			for _, dc := range dcs {
				if ok, err := dc.WaitContext(wctx); err != nil || !ok {
					b.Fatalf("confirm: ack %v, %v", ok, err)
				}
			}
		}
		publishAll()
		b.ReportAllocs()
		b.SetBytes(n * size)
		for b.Loop() {
			purge()
			publishAll()
		}
		b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
		ch.Close()
		if c := <-returned; c != 0 {
			b.Fatalf("%d messages returned", c)
		}
	})
}
