package nats

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluiceio/sluice/internal/fstype"
	"github.com/sluiceio/sluice/internal/testserver/natsserver"
	"github.com/sluiceio/sluice/sink"
)

// BenchmarkWrite compares the sink with the plain nats.go JetStream client
// publishing the same messages with the same acknowledgements, against
// one nats-server in the same run, into a stream with file storage (what
// production uses) and one with memory storage (the server does less, so
// the clients' own costs weigh more), emptied before each sub-benchmark:
// 1000 messages of 1 KiB
// per round, each with a key, a header, sluice-id and Nats-Msg-Id (fresh
// ids every round, so the server stores them), published asynchronously
// with at most 1000 awaiting their PubAck, and the round waits for every
// PubAck. The plain client builds each nats.Msg (subject, headers) and
// publishes with WithMsgID; the sink also checks subjects and headers,
// copies the values and publishes from its own goroutine.
func BenchmarkWrite(b *testing.B) {
	srv := natsserver.Start(b, natsserver.Options{})
	b.Logf("nats-server %s, store on %s", srv.Version(), fstype.Name(srv.StoreDir()))
	const n, size = 1000, 1024
	msgs := make([]sink.Message, n)
	idx := make([]string, n)
	for i := range msgs {
		idx[i] = strconv.Itoa(i)
		msgs[i] = sink.Message{
			Topic:     "bench.t",
			Key:       []byte("key-" + strconv.Itoa(i%100)),
			Value:     make([]byte, size),
			Headers:   []sink.Header{{Key: "h", Value: []byte("v")}},
			Time:      time.Now(),
			Partition: sink.NoPartition,
		}
	}
	for _, storage := range []jetstream.StorageType{jetstream.FileStorage, jetstream.MemoryStorage} {
		fresh := func() {
			srv.DeleteStream("BENCH")
			cfg := jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench.>"}, Storage: storage}
			if storage == jetstream.MemoryStorage {
				cfg.MaxBytes = 32 << 20 // the test server's memory store holds 64 MiB; older messages go
			}
			srv.CreateStream(cfg)
		}
		b.Run(storage.String(), func(b *testing.B) {
			b.Run("sink", func(b *testing.B) {
				fresh()
				benchSink(b, srv, msgs, idx)
			})
			b.Run("nats.go", func(b *testing.B) {
				fresh()
				benchPlain(b, srv, msgs, idx)
			})
			b.Run("alternating", func(b *testing.B) {
				fresh()
				benchAlternating(b, srv, msgs, idx)
			})
		})
	}
}

// benchAlternating runs a sink round and a plain client round in turn and
// reports both rates and their ratio: on a shared machine whose load
// drifts, alternating keeps the two under the same conditions.
func benchAlternating(b *testing.B, srv *natsserver.Server, msgs []sink.Message, idx []string) {
	ctx := context.Background()
	n := len(msgs)
	w := newWriter(b, Options{Name: "bench", URL: srv.URL(), MaxPending: n})
	pl := newPlain(b, srv, n)
	var sinkTime, plainTime, sinkCPU, plainCPU time.Duration
	round := 0
	for b.Loop() {
		round++
		prefix := "a" + strconv.Itoa(round) + "-"
		for i := range msgs {
			msgs[i].ID = prefix + idx[i]
		}
		t0, c0 := time.Now(), processCPU()
		if err := w.Write(ctx, msgs); err != nil {
			b.Fatal(err)
		}
		t1, c1 := time.Now(), processCPU()
		pl.round(b, msgs, "b"+strconv.Itoa(round)+"-", idx)
		sinkTime, plainTime = sinkTime+t1.Sub(t0), plainTime+time.Since(t1)
		sinkCPU, plainCPU = sinkCPU+c1-c0, plainCPU+processCPU()-c1
	}
	msgsDone := float64(b.N * n)
	sinkRate, plainRate := msgsDone/sinkTime.Seconds(), msgsDone/plainTime.Seconds()
	b.ReportMetric(sinkRate, "sink-msgs/s")
	b.ReportMetric(plainRate, "nats.go-msgs/s")
	b.ReportMetric(sinkRate/plainRate, "ratio")
	// The client's own CPU per message (the server is another process):
	// steadier than the rates on a loaded machine.
	b.ReportMetric(float64(sinkCPU.Nanoseconds())/msgsDone, "sink-cpu-ns/msg")
	b.ReportMetric(float64(plainCPU.Nanoseconds())/msgsDone, "nats.go-cpu-ns/msg")
}

// processCPU is the CPU time (user + system) this process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchSink(b *testing.B, srv *natsserver.Server, msgs []sink.Message, idx []string) {
	ctx := context.Background()
	n := len(msgs)
	w := newWriter(b, Options{Name: "bench", URL: srv.URL(), MaxPending: n})
	round := 0
	b.ReportAllocs()
	b.SetBytes(int64(n * len(msgs[0].Value)))
	for b.Loop() {
		round++
		prefix := "s" + strconv.Itoa(round) + "-"
		for i := range msgs {
			msgs[i].ID = prefix + idx[i]
		}
		if err := w.Write(ctx, msgs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
}

func benchPlain(b *testing.B, srv *natsserver.Server, msgs []sink.Message, idx []string) {
	n := len(msgs)
	pl := newPlain(b, srv, n)
	round := 0
	b.ReportAllocs()
	b.SetBytes(int64(n * len(msgs[0].Value)))
	for b.Loop() {
		round++
		pl.round(b, msgs, "p"+strconv.Itoa(round)+"-", idx)
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
}

// plain is the plain nats.go JetStream client with the sink's settings.
type plain struct {
	js   jetstream.JetStream
	futs []jetstream.PubAckFuture
}

func newPlain(b *testing.B, srv *natsserver.Server, n int) *plain {
	nc, err := natsgo.Connect(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(n), jetstream.WithPublishAsyncTimeout(DefaultAckTimeout))
	if err != nil {
		b.Fatal(err)
	}
	return &plain{js: js, futs: make([]jetstream.PubAckFuture, n)}
}

// round publishes msgs with ids prefix+idx[i] and waits for every PubAck.
func (p *plain) round(b *testing.B, msgs []sink.Message, prefix string, idx []string) {
	var err error
	for i := range msgs {
		m := &msgs[i]
		id := prefix + idx[i]
		nm := &natsgo.Msg{Subject: m.Topic, Data: m.Value, Header: natsgo.Header{
			"h": {string(m.Headers[0].Value)}, sink.IDHeader: {id}, KeyHeader: {string(m.Key)},
		}}
		if p.futs[i], err = p.js.PublishMsgAsync(nm, jetstream.WithMsgID(id)); err != nil {
			b.Fatal(err)
		}
	}
	for _, f := range p.futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		}
	}
}
