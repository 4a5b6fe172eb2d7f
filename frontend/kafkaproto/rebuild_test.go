package kafkaproto

import (
	"testing"
	"time"
)

// metaAcceptor hands back batch metas as a spool would after a restart.
type metaAcceptor struct {
	funcAcceptor
	last  uint64
	metas map[uint64][]byte // spool sequence → batch meta
}

func (m metaAcceptor) LastSeq() uint64 { return m.last }

func (m metaAcceptor) ScanMeta(_ time.Time, fn func(uint64, string, []byte)) error {
	for seq := uint64(1); seq <= m.last; seq++ {
		if meta, ok := m.metas[seq]; ok {
			fn(seq, "t", meta)
		}
	}
	return nil
}

// A crash can cut the tail of an append: the first records of an
// idempotent producer's batch (with its meta) survive, the rest is gone,
// and the batch was never acknowledged. Rebuilt as spooled, the producer's
// retry of it was answered as a duplicate and its missing records were
// lost (seen in TestE2EKafkaListenerOutageAndKill9). Only batches whose
// every record is in the spool count.
func TestRebuildSkipsBatchCutByACrash(t *testing.T) {
	p, err := openProducers(t.TempDir(), 16)
	if err != nil {
		t.Fatal(err)
	}
	acc := metaAcceptor{last: 7, metas: map[uint64][]byte{
		1: encodeBatchMeta(0, 5, 0, 0, 5), // records 1-5: whole
		6: encodeBatchMeta(0, 5, 0, 5, 5), // records 6-10: only 6-7 survived
	}}
	n, err := p.rebuild(acc, time.Time{})
	if err != nil || n != 1 {
		t.Fatalf("rebuild: %d batches, %v; want 1", n, err)
	}
	pr := p.get(5)
	tp := topicPartition{"t", 0}
	if dup, _, err := pr.check(tp, 0, 0, 5); !dup || err != nil {
		t.Fatalf("the whole batch: dup=%v err=%v, want a duplicate", dup, err)
	}
	if dup, _, err := pr.check(tp, 0, 5, 5); dup || err != nil {
		t.Fatalf("the batch cut by the crash: dup=%v err=%v, want it spooled again", dup, err)
	}
}
