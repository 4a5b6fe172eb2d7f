package main

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestE2EKafkaListenerProducesToQueue: a queue is "routed like any sink"
// (SLUICE_<NAME>_TOPICS), and the Kafka listener takes "the topics some
// sink's SLUICE_<NAME>_TOPICS globs take". A franz-go producer pointed at
// the listener of an agent whose only sink is a queue must be able to
// produce to the queue's topic, and a worker must pull what it produced.
func TestE2EKafkaListenerProducesToQueue(t *testing.T) {
	kl := freePort(t)
	p := start(t, queueEnv(t.TempDir(), "SLUICE_JOBS_TOPICS=email", "SLUICE_LISTEN_KAFKA="+kl)...)

	cl, err := kgo.NewClient(kgo.SeedBrokers(kl), kgo.DefaultProduceTopic("email"),
		kgo.RecordDeliveryTimeout(10*time.Second), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("user-7"), Value: []byte(`{"to":"a@example.com"}`)}).FirstErr(); err != nil {
		t.Fatalf("produce to a topic routed to queue jobs through the Kafka listener: %v", err)
	}
	r := mustQ(t, p.url, "jobs", "pull", map[string]any{"wait": "5s"})
	if len(r.Messages) != 1 || string(r.Messages[0].Value) != `{"to":"a@example.com"}` {
		t.Fatalf("pulled %+v, want the produced message", r.Messages)
	}
}
