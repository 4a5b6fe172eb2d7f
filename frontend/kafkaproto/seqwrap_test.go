package kafkaproto

import (
	"math"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// kafkaIncrementSequence is Kafka's DefaultRecordBatch.incrementSequence,
// the same as franz-go's kgo.incrementSequence (sink.go): sequences run
// 0..MaxInt32 and then wrap to 0 (modulo 2^31, MaxInt32 itself is a valid
// sequence).
func kafkaIncrementSequence(seq, inc int32) int32 {
	if seq > math.MaxInt32-inc {
		return inc - (math.MaxInt32 - seq) - 1
	}
	return seq + inc
}

// An idempotent producer that has sent
// about 2^31 records to one partition crosses the sequence wrap-around.
// The next batch, in order as Kafka and franz-go count, must be accepted
// (not OUT_OF_ORDER_SEQUENCE_NUMBER), and a retry of the batch that
// crossed the wrap must still be recognised as a duplicate.
func TestSequenceWrapsLikeKafka(t *testing.T) {
	cases := []struct {
		name  string
		first int32
		vals  []string
	}{
		// Ends exactly at MaxInt32: Kafka's next sequence is MaxInt32.
		{"next is MaxInt32", math.MaxInt32 - 2, []string{"a", "b"}},
		// Crosses MaxInt32: Kafka's next sequence is 0.
		{"crosses MaxInt32", math.MaxInt32 - 1, []string{"a", "b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, t.TempDir(), Options{Partitions: map[string]int32{"t": 1}})
			c := dial(t, e.srv.Addr())
			pid := initProducer(t, c)
			first := c.produce("t", 0, recordBatch(pid, 0, tc.first, 0, tc.vals...))
			if first.ErrorCode != 0 {
				t.Fatalf("first batch: %v", kerr.ErrorForCode(first.ErrorCode))
			}
			next := kafkaIncrementSequence(tc.first, int32(len(tc.vals)))
			got := c.produce("t", 0, recordBatch(pid, 0, next, 0, "c"))
			if got.ErrorCode != 0 {
				t.Errorf("batch at Kafka's next sequence %d after [%d,+%d): %v (sluice expects %d)",
					next, tc.first, len(tc.vals), kerr.ErrorForCode(got.ErrorCode), seqAdd(tc.first, int32(len(tc.vals))))
			}
		})
	}
}
