package kafkaproto

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func initProducer(t *testing.T, c *rawConn) int64 {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = 4
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	c.request(req, resp)
	if resp.ErrorCode != 0 || resp.ProducerID < 0 {
		t.Fatalf("InitProducerId: error %d, id %d", resp.ErrorCode, resp.ProducerID)
	}
	return resp.ProducerID
}

// TestSequenceWindow: a retried batch gets its original offset and is not
// spooled again; a gap is OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch is
// INVALID_PRODUCER_EPOCH; a new epoch restarts at sequence 0.
func TestSequenceWindow(t *testing.T) {
	e := start(t, t.TempDir(), Options{Partitions: map[string]int32{"t": 2}})
	c := dial(t, e.srv.Addr())
	pid := initProducer(t, c)

	first := c.produce("t", 1, recordBatch(pid, 0, 0, 0, "a", "b"))
	if first.ErrorCode != 0 {
		t.Fatalf("first batch: %v", kerr.ErrorForCode(first.ErrorCode))
	}
	second := c.produce("t", 1, recordBatch(pid, 0, 2, 0, "c"))
	if second.ErrorCode != 0 || second.BaseOffset <= first.BaseOffset {
		t.Fatalf("second batch: %v at %d after %d", kerr.ErrorForCode(second.ErrorCode), second.BaseOffset, first.BaseOffset)
	}
	if dup := c.produce("t", 1, recordBatch(pid, 0, 0, 0, "a", "b")); dup.ErrorCode != 0 || dup.BaseOffset != first.BaseOffset {
		t.Errorf("retried batch: %v at %d, want its original offset %d", kerr.ErrorForCode(dup.ErrorCode), dup.BaseOffset, first.BaseOffset)
	}
	if gap := c.produce("t", 1, recordBatch(pid, 0, 9, 0, "z")); gap.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Errorf("gap: %v, want OUT_OF_ORDER_SEQUENCE_NUMBER", kerr.ErrorForCode(gap.ErrorCode))
	}
	// Partition 0 has its own window.
	if p0 := c.produce("t", 0, recordBatch(pid, 0, 0, 0, "p0")); p0.ErrorCode != 0 {
		t.Errorf("partition 0: %v", kerr.ErrorForCode(p0.ErrorCode))
	}
	if bump := c.produce("t", 1, recordBatch(pid, 1, 5, 0, "x")); bump.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Errorf("new epoch not at sequence 0: %v", kerr.ErrorForCode(bump.ErrorCode))
	}
	if bump := c.produce("t", 1, recordBatch(pid, 1, 0, 0, "d")); bump.ErrorCode != 0 {
		t.Errorf("new epoch at 0: %v", kerr.ErrorForCode(bump.ErrorCode))
	}
	if stale := c.produce("t", 1, recordBatch(pid, 0, 3, 0, "y")); stale.ErrorCode != kerr.InvalidProducerEpoch.Code {
		t.Errorf("stale epoch: %v, want INVALID_PRODUCER_EPOCH", kerr.ErrorForCode(stale.ErrorCode))
	}
	got := e.sink.wait(t, 5)
	var values []string
	for _, m := range got {
		values = append(values, string(m.Value))
	}
	if len(got) != 5 {
		t.Errorf("sink got %q, want a b c p0 d once each", values)
	}
}

// TestProducerIDsUniqueAcrossRestarts: ids handed out after a restart on
// the same state directory never repeat earlier ones.
func TestProducerIDsUniqueAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	p, err := openProducers(dir, 10)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for range producerIDBlock + 5 { // crosses a block
		id, err := p.newID()
		if err != nil {
			t.Fatal(err)
		}
		seen[id] = true
	}
	for range 3 { // "crash": reopen without handing the block back
		p, err = openProducers(dir, 10)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			id, err := p.newID()
			if err != nil {
				t.Fatal(err)
			}
			if seen[id] {
				t.Fatalf("producer id %d handed out twice", id)
			}
			seen[id] = true
		}
	}
}

// TestSequenceWindowSurvivesRestart: after a restart on the same spool, a
// batch retried from before it is still answered with its original offset
// and not spooled again; the next sequence is accepted.
func TestSequenceWindowSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	o := Options{Partitions: map[string]int32{"t": 2}}
	e := start(t, dir, o)
	c := dial(t, e.srv.Addr())
	pid := initProducer(t, c)
	first := c.produce("t", 1, recordBatch(pid, 0, 0, 0, "a", "b"))
	second := c.produce("t", 1, recordBatch(pid, 0, 2, 0, "c"))
	if first.ErrorCode != 0 || second.ErrorCode != 0 {
		t.Fatalf("produce: %v %v", kerr.ErrorForCode(first.ErrorCode), kerr.ErrorForCode(second.ErrorCode))
	}
	e.sink.wait(t, 3)
	e.stop()

	e = start(t, dir, o)
	c = dial(t, e.srv.Addr())
	if dup := c.produce("t", 1, recordBatch(pid, 0, 0, 0, "a", "b")); dup.ErrorCode != 0 || dup.BaseOffset != first.BaseOffset {
		t.Errorf("batch retried across the restart: %v at %d, want offset %d", kerr.ErrorForCode(dup.ErrorCode), dup.BaseOffset, first.BaseOffset)
	}
	if gap := c.produce("t", 1, recordBatch(pid, 0, 7, 0, "z")); gap.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Errorf("gap after the restart: %v", kerr.ErrorForCode(gap.ErrorCode))
	}
	next := c.produce("t", 1, recordBatch(pid, 0, 3, 0, "d"))
	if next.ErrorCode != 0 || next.BaseOffset <= second.BaseOffset {
		t.Errorf("next batch: %v at %d", kerr.ErrorForCode(next.ErrorCode), next.BaseOffset)
	}
	if pid2 := initProducer(t, c); pid2 == pid {
		t.Errorf("producer id %d handed out again after the restart", pid)
	}
	got := e.sink.wait(t, 1)
	if len(got) != 1 || string(got[0].Value) != "d" {
		t.Errorf("after the restart the sink got %d messages (%q...), want only d", len(got), got[0].Value)
	}
}
