package kafka

import (
	"fmt"
	"testing"

	kafkago "github.com/segmentio/kafka-go"
)

// murmur2 hashes published with librdkafka's rdmurmur2.c unit test (the
// Java client's Utils.murmur2); the partition is toPositive(hash) % n.
// kcat's murmur2_random is compared end to end in the kcat tests.
func TestMurmur2KnownValues(t *testing.T) {
	p := newPartitioner("murmur2")
	for key, hash := range map[string]uint32{
		"kafka":                                  0xd067cf64,
		"giberish123456789":                      0x8f552b0c,
		"1234":                                   0x9fc97b14,
		"234":                                    0xe7c009ca,
		"34":                                     0x873930da,
		"4":                                      0x5a4b5ca1,
		"PreAmbleWillBeRemoved,ThePrePartThatIs": 0x78424f1c,
		"":                                       0x106e08d9,
	} {
		for _, n := range []int{1, 6, 17, 1000} {
			if got, want := p.partition("t", []byte(key), nil, n), int((hash&0x7fffffff)%uint32(n)); got != want {
				t.Errorf("key %q, %d partitions: %d, want %d", key, n, got, want)
			}
		}
	}
	// Stable per key, spread over partitions, in range.
	seen := map[int]bool{}
	for i := 0; i < 1000; i++ {
		k := []byte(fmt.Sprint("k", i))
		a, b := p.partition("t", k, nil, 12), p.partition("t", k, nil, 12)
		if a != b || a < 0 || a >= 12 {
			t.Fatalf("key %s: %d then %d", k, a, b)
		}
		seen[a] = true
	}
	if len(seen) != 12 {
		t.Errorf("1000 keys hit %d of 12 partitions", len(seen))
	}
}

func TestKeylessRoundRobin(t *testing.T) {
	for _, name := range []string{"murmur2", "hash", "round_robin"} {
		p := newPartitioner(name)
		counts := make([]int, 5)
		for i := 0; i < 50; i++ {
			counts[p.partition("t", nil, nil, 5)]++
		}
		for part, n := range counts {
			if n != 10 {
				t.Errorf("%s: keyless partition %d got %d of 50", name, part, n)
			}
		}
	}
}

func TestHashMatchesKafkaGo(t *testing.T) {
	p := newPartitioner("hash")
	var ref kafkago.Hash
	for i := 0; i < 100; i++ {
		k := []byte(fmt.Sprint("key", i))
		if got, want := p.partition("t", k, nil, 7), ref.Balance(kafkago.Message{Key: k}, 0, 1, 2, 3, 4, 5, 6); got != want {
			t.Fatalf("key %s: %d, kafka-go Hash %d", k, got, want)
		}
	}
}

func TestLeastBytesPerTopic(t *testing.T) {
	p := newPartitioner("least_bytes")
	// A big message on topic a must not skew topic b.
	a0 := p.partition("a", nil, make([]byte, 1000), 2)
	if b0 := p.partition("b", nil, []byte("x"), 2); b0 != a0 {
		t.Errorf("topic b's first message went to %d, topic a's to %d: counters shared", b0, a0)
	}
	if a1 := p.partition("a", nil, []byte("x"), 2); a1 == a0 {
		t.Errorf("least_bytes reused the fuller partition")
	}
}

func TestPresetBalancer(t *testing.T) {
	b := presetBalancer{newPartitioner("round_robin")}
	r := &msgRef{part: 3}
	if got := b.Balance(kafkago.Message{WriterData: r}, 0, 1, 2, 3, 4); got != 3 {
		t.Errorf("preset partition: %d", got)
	}
	// Fewer partitions than when Write decided: fall back.
	if got := b.Balance(kafkago.Message{WriterData: r}, 0, 1); got < 0 || got > 1 {
		t.Errorf("fallback partition: %d", got)
	}
}
