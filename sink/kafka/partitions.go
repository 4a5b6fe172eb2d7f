package kafka

import (
	"context"
	"fmt"
	"strconv"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol/describeconfigs"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"
)

// Partitions returns the number of partitions of topic (before TopicMap
// and TopicPrefix) in the cluster, from one metadata request: front-ends
// that speak Kafka mirror it. An error is the cluster's (a kafka-go Error
// such as UnknownTopicOrPartition) or the request's.
func (w *Writer) Partitions(ctx context.Context, topic string) (int, error) {
	if w.closed.Load() {
		return 0, ErrClosed
	}
	name := w.cfg.kafkaTopic(topic)
	r, err := w.transport.RoundTrip(ctx, w.addr, &metadataAPI.Request{TopicNames: []string{name}})
	if err != nil {
		return 0, err
	}
	for _, tp := range r.(*metadataAPI.Response).Topics {
		if tp.Name != name {
			continue
		}
		if tp.ErrorCode != 0 {
			return 0, kafkago.Error(tp.ErrorCode)
		}
		return len(tp.Partitions), nil
	}
	return 0, kafkago.UnknownTopicOrPartition
}

// resourceTopic is DescribeConfigs' resource type of a topic.
const resourceTopic = 2

// MaxMessageBytes returns the topic's max.message.bytes in the cluster
// (before TopicMap and TopicPrefix): the largest record batch it takes.
// Front-ends check records against it at ingest, so that an ack is rarely
// followed by a rejection upstream.
func (w *Writer) MaxMessageBytes(ctx context.Context, topic string) (int, error) {
	if w.closed.Load() {
		return 0, ErrClosed
	}
	name := w.cfg.kafkaTopic(topic)
	r, err := w.transport.RoundTrip(ctx, w.addr, &describeconfigs.Request{Resources: []describeconfigs.RequestResource{
		{ResourceType: resourceTopic, ResourceName: name, ConfigNames: []string{"max.message.bytes"}},
	}})
	if err != nil {
		return 0, err
	}
	for _, res := range r.(*describeconfigs.Response).Resources {
		if res.ResourceName != name {
			continue
		}
		if res.ErrorCode != 0 {
			return 0, kafkago.Error(res.ErrorCode)
		}
		for _, e := range res.ConfigEntries {
			if e.ConfigName == "max.message.bytes" {
				n, err := strconv.Atoi(e.ConfigValue)
				if err != nil || n <= 0 {
					return 0, fmt.Errorf("kafka: topic %s: max.message.bytes %q", name, e.ConfigValue)
				}
				return n, nil
			}
		}
	}
	return 0, kafkago.UnknownTopicOrPartition
}
