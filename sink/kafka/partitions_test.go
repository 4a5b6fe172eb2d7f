package kafka

import (
	"context"
	"errors"
	"testing"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestPartitions: the upstream count of a topic, after TOPIC_PREFIX; an
// unknown topic is the cluster's error.
func TestPartitions(t *testing.T) {
	_, addr := newCluster(t, kfake.SeedTopics(5, "pre.orders"))
	w := newWriter(t, addr, Options{TopicPrefix: "pre."})
	n, err := w.Partitions(context.Background(), "orders")
	if err != nil || n != 5 {
		t.Fatalf("orders: %d, %v; want 5", n, err)
	}
	if _, err := w.Partitions(context.Background(), "missing"); !errors.Is(err, kafkago.UnknownTopicOrPartition) {
		t.Fatalf("missing topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
}
