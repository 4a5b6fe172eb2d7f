package kafka

import (
	"context"
	"errors"
	"testing"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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

// TestMaxMessageBytes: the topic's max.message.bytes, after TOPIC_PREFIX.
func TestMaxMessageBytes(t *testing.T) {
	_, addr := newCluster(t, kfake.SeedTopics(1, "pre.orders"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, "pre.orders"
	cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	cfg.Name, cfg.Value = "max.message.bytes", kmsg.StringPtr("4096")
	res.Configs = append(res.Configs, cfg)
	req.Resources = append(req.Resources, res)
	if _, err := req.RequestWith(context.Background(), cl); err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, addr, Options{TopicPrefix: "pre."})
	n, err := w.MaxMessageBytes(context.Background(), "orders")
	if err != nil || n != 4096 {
		t.Fatalf("orders: %d, %v; want 4096", n, err)
	}
}
