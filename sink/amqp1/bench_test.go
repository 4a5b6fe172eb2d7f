package amqp1

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/sluiceio/sluice/internal/testserver/artemis"
	"github.com/sluiceio/sluice/sink"
)

// BenchmarkWrite compares the sink with the plain go-amqp client sending
// the same messages (1000 × 1 KiB, a key, one header, the sluice id,
// creation time, durable) the same way: one unsettled link, every message
// sent with SendWithReceipt before the outcomes are awaited, success only
// on Accepted. Both run against one Artemis broker in the same run, each
// on its own address, after a warm-up of the broker; the journal is
// synced, as in production. It reports both rates and their ratio
// (sink/go-amqp: 1 = as fast as the plain client).
func BenchmarkWrite(b *testing.B) {
	artemis.Require(b)
	br := artemis.Start(b, artemis.Options{Users: map[string]string{adminUser: adminPass}})
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
	// Messages are consumed by nobody: purge between runs so that the
	// queues do not page to disk.
	purge := func(b *testing.B, q string) {
		c := newClient(b, br)
		if _, err := c.manage(b, "queue."+q, "removeAllMessages", "[]"); err != nil {
			b.Fatal(err)
		}
	}

	// The broker's JIT needs a while to warm up; without this the first
	// sub-benchmark would measure it.
	warm := newWriter(b, Options{URL: br.URL(adminUser, adminPass), Address: "bench-warmup"})
	for range 40 {
		write(b, warm, msgs)
	}
	purge(b, "bench-warmup")

	w := newWriter(b, Options{URL: br.URL(adminUser, adminPass), Address: "bench-sink"})
	plain := newPlain(b, br, "bench-plain", msgs)

	// Rounds alternate between the two, each timed on its own, so that
	// load from elsewhere on the machine hits both alike.
	var sinkTime, plainTime time.Duration
	b.SetBytes(2 * n * size)
	round := 0
	for b.Loop() {
		sinkRound := func() {
			t0 := time.Now()
			if err := w.Write(ctx, msgs); err != nil {
				b.Fatal(err)
			}
			sinkTime += time.Since(t0)
		}
		plainRound := func() {
			t0 := time.Now()
			plain.send(b)
			plainTime += time.Since(t0)
		}
		if round%2 == 0 { // neither always goes first
			sinkRound()
			plainRound()
		} else {
			plainRound()
			sinkRound()
		}
		if round++; round%50 == 0 {
			b.StopTimer()
			purge(b, "bench-sink")
			purge(b, "bench-plain")
			b.StartTimer()
		}
	}
	rounds := float64(round)
	b.ReportMetric(rounds*n/sinkTime.Seconds(), "sink-msgs/s")
	b.ReportMetric(rounds*n/plainTime.Seconds(), "go-amqp-msgs/s")
	b.ReportMetric(plainTime.Seconds()/sinkTime.Seconds(), "sink/go-amqp")
	b.StopTimer()
	purge(b, "bench-sink")
	purge(b, "bench-plain")
}

// plainSender is the plain go-amqp client of BenchmarkWrite.
type plainSender struct {
	snd *amqp.Sender
	ams []*amqp.Message
}

func newPlain(b *testing.B, br *artemis.Broker, addr string, msgs []sink.Message) *plainSender {
	ctx := context.Background()
	conn, err := amqp.Dial(ctx, "amqp://"+br.Addr(), &amqp.ConnOptions{SASLType: amqp.SASLTypePlain(adminUser, adminPass)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	unsettled := amqp.SenderSettleModeUnsettled
	snd, err := sess.NewSender(ctx, addr, &amqp.SenderOptions{SettlementMode: &unsettled, TargetCapabilities: []string{"queue"}})
	if err != nil {
		b.Fatal(err)
	}
	p := &plainSender{snd: snd}
	for _, m := range msgs {
		t := m.Time
		p.ams = append(p.ams, &amqp.Message{
			Header:                &amqp.MessageHeader{Durable: true},
			Properties:            &amqp.MessageProperties{MessageID: m.ID, CreationTime: &t},
			ApplicationProperties: map[string]any{"h": "v", sink.IDHeader: m.ID, KeyProperty: string(m.Key)},
			Data:                  [][]byte{m.Value},
		})
	}
	return p
}

// send sends every message, then waits for every outcome.
func (p *plainSender) send(b *testing.B) {
	ctx := context.Background()
	receipts := make([]amqp.SendReceipt, 0, len(p.ams))
	for _, m := range p.ams {
		r, err := p.snd.SendWithReceipt(ctx, m, nil)
		if err != nil {
			b.Fatal(err)
		}
		receipts = append(receipts, r)
	}
	for i := range receipts {
		st, err := receipts[i].Wait(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := st.(*amqp.StateAccepted); !ok {
			b.Fatalf("outcome %T", st)
		}
	}
}
