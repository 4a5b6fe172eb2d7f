package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluiceio/sluice/internal/loadgen"
	"github.com/sluiceio/sluice/sink/kafka"
)

// Against the real three-node cluster, same run, acks=all everywhere,
// 1 KiB values, topic of 6 partitions with replication factor 3 and
// min.insync.replicas 2:
//   - plain-kafka-go-writer: kafka-go's Writer fed from memory with the
//     sink's settings (BatchTimeout 1 ms, batches of 1000, MaxAttempts 1,
//     murmur2 on 1000 keys, a sluice-id header);
//   - sluice-forwarder: the agent draining a backlog of b.N messages
//     through the Kafka sink;
//   - java-producer: org.apache.kafka.tools.ProducerPerformance (acks=all,
//     linger.ms=1, batch.size 1 MiB, no keys), its own records/sec.
//
//	./scripts/bench kafka-real      (or)
//	go test -run '^$' -bench RealKafka -benchtime 100000x -count 3 ./cmd/sluice

func BenchmarkRealKafkaDrain(b *testing.B) {
	c := realCluster(b)
	realBenchTopic(b, "bench-writer")
	realBenchTopic(b, "bench-forwarder")
	realBenchTopic(b, "bench-java")
	b.Run("plain-kafka-go-writer", func(b *testing.B) {
		w := &kafkago.Writer{Addr: kafkago.TCP(c.Brokers()...), Topic: "bench-writer", RequiredAcks: kafkago.RequireAll,
			BatchTimeout: time.Millisecond, BatchSize: 1000, BatchBytes: 1 << 20, MaxAttempts: 1,
			WriteTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second,
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
		ks, err := kafka.New(kafka.Options{Name: "k", Brokers: c.Brokers(), Logger: quietLog(),
			TopicMap: map[string]string{"bench": "bench-forwarder"}})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(1024)
		var t0 time.Time
		_, sp, _, stop := startBenchAgent(b, dir, ks, func() { b.ResetTimer(); t0 = time.Now() })
		defer stop()
		waitDrained(sp)
		b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "msgs/s")
	})
	b.Run("java-producer", func(b *testing.B) {
		b.SetBytes(1024)
		out, err := c.Env().ProducerPerformance(context.Background(), "--topic", "bench-java",
			"--num-records", strconv.Itoa(b.N), "--record-size", "1024", "--throughput", "-1",
			"--producer-props", "bootstrap.servers="+c.Bootstrap(), "acks=all", "linger.ms=1",
			"batch.size=1048576", "compression.type=none", "max.in.flight.requests.per.connection=5")
		if err != nil {
			b.Fatal(err)
		}
		m := perfSummary.FindStringSubmatch(out)
		if m == nil {
			b.Fatalf("no summary in ProducerPerformance output:\n%s", out)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		b.ReportMetric(v, "msgs/s")
	})
}

var perfSummary = regexp.MustCompile(`\d+ records sent, ([0-9.]+) records/sec`)

// BenchmarkRealKafkaSustained pushes at a fixed rate (open loop, NDJSON
// 100 × 1 KiB, 8 connections; SLUICE_KAFKA_BENCH_RATE msgs/s, default
// 5000, below what the shared 2-core machine drains) for b.N messages while the forwarder sends to the real cluster,
// and reports the delivered rate and the backlog: its largest sample and
// what is left when the pushes stop. A flat backlog means forwarding keeps
// up with the rate.
func BenchmarkRealKafkaSustained(b *testing.B) {
	c := realCluster(b)
	realBenchTopic(b, "bench-sustained")
	rate := 5000.0
	if s := os.Getenv("SLUICE_KAFKA_BENCH_RATE"); s != "" {
		rate, _ = strconv.ParseFloat(s, 64)
	}
	ks, err := kafka.New(kafka.Options{Name: "k", Brokers: c.Brokers(), Logger: quietLog(),
		TopicMap: map[string]string{"bench": "bench-sustained"}})
	if err != nil {
		b.Fatal(err)
	}
	_, sp, url, stop := startBenchAgent(b, b.TempDir(), ks, nil)
	defer stop()
	b.SetBytes(1024)
	b.ResetTimer()
	t0 := time.Now()
	var mu sync.Mutex
	var maxBacklog int64
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
				mu.Lock()
				maxBacklog = max(maxBacklog, backlogOf(sp))
				mu.Unlock()
			}
		}
	}()
	rep, err := loadgen.Run(context.Background(), loadgen.Config{URL: url, Mode: loadgen.ModeNDJSON, Batch: 100, Size: 1024,
		Connections: 8, Keys: 1000, Topic: "bench", Rate: rate, Count: int64(b.N)})
	close(done)
	if err != nil {
		b.Fatal(err)
	}
	pushed := time.Since(t0)
	end := backlogOf(sp)
	waitDrained(sp)
	mu.Lock()
	defer mu.Unlock()
	b.ReportMetric(float64(rep.Acked)/pushed.Seconds(), "pushed-msgs/s")
	b.ReportMetric(float64(rep.Acked)/time.Since(t0).Seconds(), "delivered-msgs/s")
	b.ReportMetric(float64(maxBacklog)/(1<<20), "backlog-max-MiB")
	b.ReportMetric(float64(end)/(1<<20), "backlog-end-MiB")
}

// realBenchTopic creates a 6-partition topic on the shared cluster.
func realBenchTopic(b *testing.B, name string) {
	createTopic(b, realCluster(b), name, 6, nil)
}
