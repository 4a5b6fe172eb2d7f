package kafka

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	kafkago "github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"

	"github.com/sluiceio/sluice/sink"
)

// Two verdicts that would dead-letter a message are checked again first:
//
//   - CORRUPT_MESSAGE can be a CRC error of the bytes on the wire, which the
//     Java client retries: the same message gets CorruptRetries more
//     attempts (transient, reason corrupt) before the error is taken as
//     about the record (permanent).
//   - An explicit partition at or above the cached partition count may be
//     a partition added since the metadata was cached: the count is asked
//     of the cluster once, bypassing the cache, before the message fails
//     with invalid_partition.

// CorruptRetries is how many times a message whose produce request failed
// with CORRUPT_MESSAGE is retried before it is dead-lettered.
const CorruptRetries = 3

// corruptSeen counts CORRUPT_MESSAGE failures per message id, bounded.
type corruptSeen struct {
	any atomic.Bool // n is not empty: delivered messages need a look
	mu  sync.Mutex
	n   map[string]int
}

// maxCorruptTracked bounds corruptSeen; past it the counts start over
// (more retries, never fewer).
const maxCorruptTracked = 10000

// retry records one more CORRUPT_MESSAGE failure of message id and
// reports whether it is still to be retried.
func (c *corruptSeen) retry(id string) bool {
	if id == "" {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil || len(c.n) >= maxCorruptTracked {
		c.n = make(map[string]int)
	}
	c.n[id]++
	retry := c.n[id] <= CorruptRetries
	if !retry {
		delete(c.n, id)
	}
	c.any.Store(len(c.n) > 0)
	return retry
}

// forget drops the count of a delivered message (one atomic load when
// nothing is counted).
func (c *corruptSeen) forget(id string) {
	if !c.any.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.n, id)
	c.any.Store(len(c.n) > 0)
}

// recheckPartitions asks the cluster, bypassing the metadata cache, for
// the partition count of each topic that a pending message addresses by a
// partition at or above the cached count, and raises parts accordingly
// (dropping the cache so that the produce request sees the new
// partitions). A failed lookup leaves those messages to fail transiently.
func (op *writeOp) recheckPartitions(ctx context.Context, parts map[string]int) {
	var topics []string
	for i, p := range op.pending {
		m := &op.msgs[i]
		t := op.topic[i]
		if p && m.Partition >= 0 {
			if n, ok := parts[t]; ok && int(m.Partition) >= n && !contains(topics, t) {
				topics = append(topics, t)
			}
		}
	}
	for _, t := range topics {
		n, err := op.w.freshPartitions(ctx, t)
		if err != nil {
			err = op.w.contextError(ctx, err)
			c := transient(classify(err))
			op.note(err, c)
			e := fmt.Errorf("kafka: topic %s: partition count not confirmed: %w", t, err)
			for i, p := range op.pending {
				if p && op.topic[i] == t && int(op.msgs[i].Partition) >= parts[t] {
					op.fail(i, sink.WithReason(c.reason, e))
				}
			}
			continue
		}
		if n > parts[t] {
			parts[t] = n
			op.w.resetMetadata()
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// freshPartitions asks the cluster for topic's partition count with a
// Transport of its own (no cached metadata).
func (w *Writer) freshPartitions(ctx context.Context, topic string) (int, error) {
	t := w.newTransport([]string{topic})
	defer t.CloseIdleConnections()
	r, err := t.RoundTrip(ctx, w.addr, &metadataAPI.Request{TopicNames: []string{topic}})
	if err != nil {
		return 0, err
	}
	for _, tp := range r.(*metadataAPI.Response).Topics {
		if tp.Name == topic {
			if tp.ErrorCode != 0 {
				return 0, kafkago.Error(tp.ErrorCode)
			}
			return len(tp.Partitions), nil
		}
	}
	return 0, kafkago.UnknownTopicOrPartition
}
