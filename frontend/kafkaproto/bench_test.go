package kafkaproto

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluiceio/sluice/internal/fstype"
	"github.com/sluiceio/sluice/internal/kafkacluster"
	"github.com/sluiceio/sluice/sink"
)

// BenchmarkProduce compares a franz-go producer (idempotent, acks all,
// no compression, 6 partitions) through the Kafka listener with sluice's
// own HTTP ingest (NDJSON), into an agent with spool sync=always and a
// sink that discards. Both send 100 messages of 1 KiB (1000 keys) per call
// from 8 goroutines, each waiting for its ack (ProduceSync, or the 202);
// b.N is the number of messages. Reports msgs/s and the p99 call latency.
//
//	go test -run '^$' -bench Produce -benchtime 100000x -count 5 ./frontend/kafkaproto
func BenchmarkProduce(b *testing.B) {
	value := bytes.Repeat([]byte("v"), 1024)
	discard := funcSink{write: func(context.Context, []sink.Message) error { return nil }}

	b.Run("kafka-listener/franz-go", func(b *testing.B) {
		dir := b.TempDir()
		b.Logf("fs=%s", fstype.Name(dir))
		e := startWith(b, dir, Options{DefaultPartitions: 6}, discard)
		cl, err := kgo.NewClient(kgo.SeedBrokers(e.srv.Addr()), kgo.DefaultProduceTopic("bench"),
			kgo.ProducerBatchCompression(kgo.NoCompression()))
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		// Warm up: metadata, producer id, connection.
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: value}).FirstErr(); err != nil {
			b.Fatal(err)
		}
		records := make([]*kgo.Record, 100)
		closedLoop(b, func(req int) error {
			recs := make([]*kgo.Record, len(records))
			for j := range recs {
				recs[j] = &kgo.Record{Key: fmt.Appendf(nil, "k%d", (req*100+j)%1000), Value: value}
			}
			return cl.ProduceSync(context.Background(), recs...).FirstErr()
		})
	})

	// The same producer to a real Apache Kafka broker (one combined node
	// on this machine, replication factor 1) for scale: with the broker's
	// default flush policy (acks come before any fsync: Kafka relies on
	// replication) and with flush.messages=1 (fsync before the ack, as
	// sluice's sync=always).
	for _, c := range []struct{ name, flush string }{{"default-flush", ""}, {"flush-each", "1"}} {
		b.Run("real-kafka/"+c.name+"/franz-go", func(b *testing.B) {
			cl := realKafkaProducer(b, c.flush)
			records := make([]*kgo.Record, 100)
			closedLoop(b, func(req int) error {
				recs := make([]*kgo.Record, len(records))
				for j := range recs {
					recs[j] = &kgo.Record{Key: fmt.Appendf(nil, "k%d", (req*100+j)%1000), Value: value}
				}
				return cl.ProduceSync(context.Background(), recs...).FirstErr()
			})
		})
	}

	b.Run("http-ingest/ndjson-100", func(b *testing.B) {
		dir := b.TempDir()
		b.Logf("fs=%s", fstype.Name(dir))
		e := startWith(b, dir, Options{}, discard)
		var body []byte
		for range 100 {
			body = append(append(body, value...), '\n')
		}
		url := "http://" + e.ingest + "/v1/topics/bench"
		cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
		post := func() error {
			resp, err := cl.Post(url, "application/x-ndjson", bytes.NewReader(body))
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}
		if err := post(); err != nil {
			b.Fatal(err)
		}
		closedLoop(b, func(int) error { return post() })
	})
}

// realKafkaProducer starts one real Kafka node (skipped when Java or the
// Kafka jars are missing: scripts/deps/kafka.sh installs them), creates a
// 6-partition topic (flush.messages=flush when set) and returns a franz-go
// producer for it, warmed up.
func realKafkaProducer(b *testing.B, flush string) *kgo.Client {
	env, err := kafkacluster.Locate()
	if err != nil {
		b.Skipf("real Kafka not available (%v); scripts/deps/kafka.sh installs it", err)
	}
	ctx := context.Background()
	c, err := kafkacluster.Start(ctx, kafkacluster.Options{Dir: b.TempDir(), Env: env})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	b.Logf("fs=%s, broker started in %v", fstype.Name(b.TempDir()), c.StartupTime.Round(time.Millisecond))
	var configs map[string]string
	if flush != "" {
		configs = map[string]string{"flush.messages": flush}
	}
	if err := c.CreateTopic(ctx, "bench", 6, 1, configs); err != nil {
		b.Fatal(err)
	}
	if err := c.WaitInSync(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...), kgo.DefaultProduceTopic("bench"),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("warm up")}).FirstErr(); err != nil {
		b.Fatal(err)
	}
	return cl
}

// closedLoop sends b.N messages as requests of 100 from 8 workers, each
// waiting for its answer before the next, and reports msgs/s and the p99
// request latency.
func closedLoop(b *testing.B, send func(req int) error) {
	requests := (b.N + 99) / 100
	lat := make([]time.Duration, requests)
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	t0 := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= requests {
					return
				}
				sent := time.Now()
				if err := send(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
				lat[i] = time.Since(sent)
			}
		}()
	}
	wg.Wait()
	report(b, time.Since(t0), lat)
	if err := firstErr.Load(); err != nil {
		b.Fatal(err)
	}
}

// report adds msgs/s (b.N messages over took) and the p99 of lat.
func report(b *testing.B, took time.Duration, lat []time.Duration) {
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/took.Seconds(), "msgs/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
