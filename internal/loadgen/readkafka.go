package loadgen

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sluiceio/sluice/sink"
)

// kafkaReadTimeout bounds one fetch when ctx has no earlier deadline.
const kafkaReadTimeout = 30 * time.Second

// maxEmptyFetches: a partition whose fetches return nothing this many times
// in a row before its high watermark is reported as an error instead of
// being polled forever.
const maxEmptyFetches = 20

// ReadKafka reads every record of topics from the first offset to the high
// watermark at the time of the call, partition by partition (topics in the
// given order, partitions by number), so that per-key order is the order
// within the key's partition. The id comes from the sluice-id header. A
// topic that does not exist has no deliveries (it is not created).
func ReadKafka(ctx context.Context, brokers []string, topics []string) ([]Delivered, error) {
	if len(brokers) == 0 {
		return nil, ErrNoBrokers
	}
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: kafkaReadTimeout}
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("kafka metadata: %w", err)
	}
	byName := map[string]kafka.Topic{}
	for _, t := range md.Topics {
		byName[t.Name] = t
	}
	dialer := &kafka.Dialer{Timeout: 10 * time.Second, ClientID: "sluice-bench"}
	var out []Delivered
	for _, name := range topics {
		t, ok := byName[name]
		if !ok || errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
			continue
		}
		if t.Error != nil {
			return out, fmt.Errorf("kafka topic %s: %w", name, t.Error)
		}
		parts := slices.SortedFunc(slices.Values(t.Partitions), func(a, b kafka.Partition) int { return cmp.Compare(a.ID, b.ID) })
		for _, p := range parts {
			if out, err = readPartition(ctx, dialer, p, out); err != nil {
				return out, fmt.Errorf("kafka %s[%d]: %w", name, p.ID, err)
			}
		}
	}
	return out, nil
}

func readPartition(ctx context.Context, dialer *kafka.Dialer, p kafka.Partition, out []Delivered) ([]Delivered, error) {
	conn, err := dialer.DialPartition(ctx, "tcp", "", p)
	if err != nil {
		return out, err
	}
	defer conn.Close()
	deadline := func() time.Time {
		d := time.Now().Add(kafkaReadTimeout)
		if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
			d = cd
		}
		return d
	}
	_ = conn.SetDeadline(deadline())
	first, last, err := conn.ReadOffsets()
	if err != nil {
		return out, fmt.Errorf("offsets: %w", err)
	}
	if first >= last {
		return out, nil
	}
	if _, err := conn.Seek(first, kafka.SeekAbsolute); err != nil {
		return out, fmt.Errorf("seek %d: %w", first, err)
	}
	next, empty := first, 0
	for next < last {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		_ = conn.SetReadDeadline(deadline())
		b := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 500 * time.Millisecond})
		before := next
		for next < last {
			m, err := b.ReadMessage()
			if err != nil {
				break
			}
			if m.Offset < next {
				continue
			}
			next = m.Offset + 1
			out = append(out, delivered(m))
		}
		if err := b.Close(); err != nil {
			return out, fmt.Errorf("fetch at %d: %w", before, err)
		}
		if next == before {
			if empty++; empty >= maxEmptyFetches {
				return out, fmt.Errorf("no records at offset %d below high watermark %d", next, last)
			}
		} else {
			empty = 0
		}
	}
	return out, nil
}

func delivered(m kafka.Message) Delivered {
	d := Delivered{Topic: m.Topic, Key: string(m.Key), N: -1, Partition: int32(m.Partition), Offset: m.Offset}
	for _, h := range m.Headers {
		if h.Key == sink.IDHeader {
			d.ID = string(h.Value)
			break
		}
	}
	if vf, ok := ParseValue(m.Value); ok {
		d.Run, d.N = vf.Run, vf.N
	}
	return d
}
