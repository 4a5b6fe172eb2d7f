package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluiceio/sluice/agent"
	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/kafka"
	"github.com/sluiceio/sluice/spool"
)

// Forwarding to Kafka against a plain kafka-go Writer, same kfake broker,
// same settings: acks all, BatchTimeout 1 ms, batches of 1000, 1 KiB
// values, murmur2 on 1000 keys, no compression, 6 partitions.
//
//	go test -run x -bench Kafka -benchtime 200000x -count 5 ./cmd/sluice

type blockedSink struct{}

func (blockedSink) Write(ctx context.Context, _ []sink.Message) error {
	<-ctx.Done()
	return errors.New("held")
}
func (blockedSink) Close(context.Context) error { return nil }

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startBenchAgent opens the spools and the agent, calls onStart (to start
// a clock) and runs it.
func startBenchAgent(b *testing.B, dir string, s sink.Sink, onStart func()) (*agent.Agent, *spool.Spool, string, func()) {
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{MaxBytes: 8 << 30, Logger: quietLog()})
	if err != nil {
		b.Fatal(err)
	}
	dl, _ := spool.Open(filepath.Join(dir, "dl"), spool.Options{Logger: quietLog()})
	a, err := agent.New(agent.Options{Spool: sp, DeadLetter: dl, Listen: "127.0.0.1:0", AdminListen: "-", Logger: quietLog(),
		DrainTimeout: time.Millisecond, Sinks: []agent.SinkSpec{{Name: "k", Sink: s}}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	if onStart != nil {
		onStart()
	}
	go func() { a.Run(ctx); close(done) }()
	<-a.Ready()
	in, _ := a.Addrs()
	return a, sp, "http://" + in, func() { cancel(); <-done }
}

// fill pushes n 1 KiB messages with 1000 keys in NDJSON requests.
func fill(b *testing.B, url string, n int) {
	value := bytes.Repeat([]byte("v"), 1024)
	for sent := 0; sent < n; {
		var body bytes.Buffer
		for i := 0; i < 100 && sent < n; i++ {
			body.Write(value)
			body.WriteByte('\n')
			sent++
		}
		req, _ := http.NewRequest("POST", url+"/v1/topics/bench", &body)
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Sluice-Key", fmt.Sprintf("k%d", sent%1000))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 202 {
			b.Fatalf("fill: %v %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body) // read to the end: the connection is reused
		resp.Body.Close()
	}
}

func BenchmarkKafkaDrainBacklog(b *testing.B) {
	b.Run("plain-kafka-go-writer", func(b *testing.B) {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "bench"))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		w := &kafkago.Writer{Addr: kafkago.TCP(c.ListenAddrs()...), Topic: "bench", RequiredAcks: kafkago.RequireAll,
			BatchTimeout: time.Millisecond, BatchSize: 1000, BatchBytes: 2 << 20, MaxAttempts: 1,
			Balancer: &kafkago.Murmur2Balancer{Consistent: true}, AllowAutoTopicCreation: false}
		defer w.Close()
		value := bytes.Repeat([]byte("v"), 1024)
		msgs := make([]kafkago.Message, 1000)
		b.SetBytes(1024)
		b.ResetTimer()
		t0 := time.Now()
		for done := 0; done < b.N; done += len(msgs) {
			batch := msgs[:min(len(msgs), b.N-done)]
			for i := range batch {
				batch[i] = kafkago.Message{Key: []byte(fmt.Sprintf("k%d", (done+i)/100%1000)), Value: value,
					Headers: []kafkago.Header{{Key: "sluice-id", Value: []byte("0123456789abcdef-1-1")}}}
			}
			if err := w.WriteMessages(context.Background(), batch...); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "msgs/s")
	})
	b.Run("sluice-forwarder", func(b *testing.B) {
		dir := b.TempDir()
		_, _, url, stop := startBenchAgent(b, dir, blockedSink{}, nil)
		fill(b, url, b.N)
		stop()
		ks := kfakeSink(b)
		b.SetBytes(1024)
		var t0 time.Time
		_, sp, _, stop := startBenchAgent(b, dir, ks, func() { b.ResetTimer(); t0 = time.Now() })
		defer stop()
		waitDrained(sp)
		b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "msgs/s")
	})
}

// BenchmarkKafkaSustained pushes (NDJSON, 100 × 1 KiB, 8 connections) while
// the forwarder sends to Kafka; it reports the push rate, the delivered
// rate and the backlog left when the pushes stop.
func BenchmarkKafkaSustained(b *testing.B) {
	ks := kfakeSink(b)
	_, sp, url, stop := startBenchAgent(b, b.TempDir(), ks, nil)
	defer stop()
	b.SetBytes(1024)
	b.ResetTimer()
	t0 := time.Now()
	per := b.N / 8
	errc := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			defer func() { errc <- nil }()
			fill(b, url, per)
		}()
	}
	for g := 0; g < 8; g++ {
		<-errc
	}
	pushed := time.Since(t0)
	backlog := backlogOf(sp)
	waitDrained(sp)
	b.ReportMetric(float64(per*8)/pushed.Seconds(), "pushed-msgs/s")
	b.ReportMetric(float64(per*8)/time.Since(t0).Seconds(), "delivered-msgs/s")
	b.ReportMetric(float64(backlog)/(1<<20), "backlog-MiB-at-end")
}

// kfakeSink is a Kafka sink named k on a fresh one-broker kfake cluster
// with topic "bench" of 6 partitions.
func kfakeSink(b *testing.B) *kafka.Writer {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "bench"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	ks, err := kafka.New(kafka.Options{Name: "k", Brokers: c.ListenAddrs(), Logger: quietLog()})
	if err != nil {
		b.Fatal(err)
	}
	return ks
}

func backlogOf(sp *spool.Spool) int64 {
	for _, ci := range sp.Cursors() {
		if ci.Name == "k" {
			return ci.Backlog.Bytes
		}
	}
	return 0
}

func waitDrained(sp *spool.Spool) {
	for backlogOf(sp) > 0 {
		time.Sleep(2 * time.Millisecond)
	}
}
