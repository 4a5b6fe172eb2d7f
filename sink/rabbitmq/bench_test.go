package rabbitmq

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluiceio/sluice/internal/fstype"
	rmqtest "github.com/sluiceio/sluice/internal/testserver/rabbitmq"
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
	msgs := benchMessages(queue, n, size)
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
		pc := newPlainClient(b, srv, queue, msgs)
		pc.publishAll(b)
		b.ReportAllocs()
		b.SetBytes(n * size)
		for b.Loop() {
			purge()
			pc.publishAll(b)
		}
		b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
		pc.close(b)
	})
}

// BenchmarkWriteAlternating measures the same two publishers as
// BenchmarkWrite, but alternating batch by batch in one loop, so that both
// see the same moments of a shared, noisy machine (and of the broker's
// disk); it reports each one's rate and their ratio (sink/plain, target
// ≥ 0.9).
func BenchmarkWriteAlternating(b *testing.B) {
	srv := node(b)
	const queue, n, size = "bench-alt", 1000, 1024
	srv.DeclareQueue(b, queue, nil)
	b.Logf("node data on %s", fstype.Name(srv.Dir()))
	admin, err := srv.Dial(b).Channel()
	if err != nil {
		b.Fatal(err)
	}
	msgs := benchMessages(queue, n, size)
	w := newWriter(b, Options{Name: "bench"})
	pc := newPlainClient(b, srv, queue, msgs)
	ctx := context.Background()
	var sinkTime, plainTime time.Duration
	for b.Loop() {
		for _, sinkFirst := range []bool{true, false} {
			for _, useSink := range []bool{sinkFirst, !sinkFirst} {
				b.StopTimer()
				if _, err := admin.QueuePurge(queue, false); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				t0 := time.Now()
				if useSink {
					if err := w.Write(ctx, msgs); err != nil {
						b.Fatal(err)
					}
					sinkTime += time.Since(t0)
				} else {
					pc.publishAll(b)
					plainTime += time.Since(t0)
				}
			}
		}
	}
	sinkRate := float64(2*b.N*n) / sinkTime.Seconds()
	plainRate := float64(2*b.N*n) / plainTime.Seconds()
	b.ReportMetric(sinkRate, "sink-msgs/s")
	b.ReportMetric(plainRate, "plain-msgs/s")
	b.ReportMetric(sinkRate/plainRate, "ratio")
	pc.close(b)
}

func benchMessages(queue string, n, size int) []sink.Message {
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
	return msgs
}

// plainClient publishes msgs with amqp091-go alone: confirm mode,
// mandatory with returns drained, persistent, the same headers and
// properties as the sink, waiting for every confirm.
type plainClient struct {
	ch       *amqp.Channel
	queue    string
	pubs     []amqp.Publishing
	dcs      []*amqp.DeferredConfirmation
	returned chan int
}

func newPlainClient(b *testing.B, srv *rmqtest.Server, queue string, msgs []sink.Message) *plainClient {
	ch, err := srv.Dial(b).Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	pc := &plainClient{ch: ch, queue: queue, returned: make(chan int, 1), dcs: make([]*amqp.DeferredConfirmation, len(msgs))}
	returns := ch.NotifyReturn(make(chan amqp.Return, 256))
	go func() {
		c := 0
		for range returns {
			c++
		}
		pc.returned <- c
	}()
	for _, m := range msgs {
		pc.pubs = append(pc.pubs, amqp.Publishing{
			Headers:      amqp.Table{"h": "v", sink.IDHeader: m.ID, KeyHeader: string(m.Key)},
			DeliveryMode: amqp.Persistent,
			MessageId:    m.ID,
			Timestamp:    m.Time,
			Body:         m.Value,
		})
	}
	return pc
}

func (pc *plainClient) publishAll(b *testing.B) {
	ctx := context.Background()
	for i := range pc.pubs {
		dc, err := pc.ch.PublishWithDeferredConfirmWithContext(ctx, "", pc.queue, true, false, pc.pubs[i])
		if err != nil {
			b.Fatal(err)
		}
		pc.dcs[i] = dc
	}
	wctx, cancel := context.WithTimeout(ctx, DefaultWriteTimeout)
	defer cancel()
	for _, dc := range pc.dcs {
		if ok, err := dc.WaitContext(wctx); err != nil || !ok {
			b.Fatalf("confirm: ack %v, %v", ok, err)
		}
	}
}

func (pc *plainClient) close(b *testing.B) {
	pc.ch.Close()
	if c := <-pc.returned; c != 0 {
		b.Fatalf("%d messages returned", c)
	}
}
