package kafka

import (
	"context"

	kafkago "github.com/segmentio/kafka-go"
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
