package kafka

import (
	"sync"
	"sync/atomic"

	kafkago "github.com/segmentio/kafka-go"
)

// partitioner picks a partition in [0, n) for a message without an
// explicit one. Implementations are safe for concurrent use.
type partitioner interface {
	partition(topic string, key, value []byte, n int) int
}

func newPartitioner(name string) partitioner {
	switch name {
	case "hash":
		return &hashPartitioner{}
	case "round_robin":
		return &roundRobin{}
	case "least_bytes":
		return &leastBytes{byTopic: make(map[string]*kafkago.LeastBytes)}
	default:
		return &murmur2Partitioner{}
	}
}

// partitionList returns [0, 1, ..., n-1], the form kafka-go's balancers
// take. The slice is shared and must not be modified.
func partitionList(n int) []int {
	if l := partitionLists.Load(); l != nil && len(*l) >= n {
		return (*l)[:n]
	}
	size := (n/128 + 1) * 128
	l := make([]int, size)
	for i := range l {
		l[i] = i
	}
	partitionLists.Store(&l)
	return l[:n]
}

var partitionLists atomic.Pointer[[]int]

// roundRobin cycles through the partitions.
type roundRobin struct{ next atomic.Uint32 }

func (r *roundRobin) partition(_ string, _, _ []byte, n int) int {
	return int((r.next.Add(1) - 1) % uint32(n))
}

// murmur2Partitioner is the Java client's default for keyed messages:
// toPositive(murmur2(key)) % n. kafka-go's Murmur2Balancer with Consistent
// set computes exactly that; keyless messages go round-robin.
type murmur2Partitioner struct{ rr roundRobin }

func (p *murmur2Partitioner) partition(topic string, key, value []byte, n int) int {
	if key == nil {
		return p.rr.partition(topic, key, value, n)
	}
	return kafkago.Murmur2Balancer{Consistent: true}.Balance(kafkago.Message{Key: key}, partitionList(n)...)
}

// hashPartitioner is kafka-go's Hash balancer (FNV-1a, as Sarama).
type hashPartitioner struct{ h kafkago.Hash }

func (p *hashPartitioner) partition(_ string, key, _ []byte, n int) int {
	return p.h.Balance(kafkago.Message{Key: key}, partitionList(n)...)
}

// leastBytes keeps one kafka-go LeastBytes balancer per topic: it counts
// bytes per partition index and must not mix topics.
type leastBytes struct {
	mu      sync.Mutex
	byTopic map[string]*kafkago.LeastBytes
}

func (p *leastBytes) partition(topic string, key, value []byte, n int) int {
	p.mu.Lock()
	b := p.byTopic[topic]
	if b == nil {
		b = &kafkago.LeastBytes{}
		p.byTopic[topic] = b
	}
	p.mu.Unlock()
	return b.Balance(kafkago.Message{Key: key, Value: value}, partitionList(n)...)
}

// presetBalancer is the kafka-go Balancer of every Writer: Write decides
// each message's partition beforehand (explicit or from the partitioner)
// and passes it in WriterData. If kafka-go's view of the partition count
// differs from the one Write used, it falls back to the partitioner.
type presetBalancer struct{ p partitioner }

func (b presetBalancer) Balance(m kafkago.Message, partitions ...int) int {
	if r, ok := m.WriterData.(*msgRef); ok && int(r.part) < len(partitions) {
		return partitions[r.part]
	}
	return partitions[b.p.partition(m.Topic, m.Key, m.Value, len(partitions))]
}
