package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// After a machine crash cut the spool's unsynced tail (as in
// TestQueueThroughComparesTheEpoch), sequences come back with a later
// epoch, and the queue log still holds the acks of the lost records (old
// epoch, same sequence). The new message at such a sequence keeps its
// attempt count (D record) and its nack delay (N record) across a kill -9:
// an ack of an earlier epoch does not cover them. (The log's replay
// skipped both for any acknowledged sequence, whatever the epoch: the
// nacked message came back at once, and both with attempt 1 again.)
func TestQueueAttemptsAndDelayOfAReusedSequenceSurviveKill9(t *testing.T) {
	dir := t.TempDir()
	so := spool.Options{MaxBytes: 256 << 20, CursorSyncInterval: time.Hour}
	ta := startAgentSpool(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q"}), so)
	pushPullAck(t, ta, 10, func(i int) string { return fmt.Sprintf(`{"n":%d}`, i) })
	img := crashImage(t, dir)
	ta.stop(t)
	cutSpoolTail(t, img, 5) // machine crash: records 6..10 were not synced

	ta = startAgentSpool(t, img, withQueues(t, img, Options{}, QueueSpec{Name: "q"}), so)
	a := pushKey(t, ta.url, "t", "", `"a"`)
	b := pushKey(t, ta.url, "t", "", `"b"`)
	if mustSeq(t, a) != 6 || mustSeq(t, b) != 7 {
		t.Fatalf("new messages at seqs %d, %d; want 6, 7 (reused)", mustSeq(t, a), mustSeq(t, b))
	}
	var ms []pulled
	waitFor(t, "the two new messages", func() bool {
		ms = append(ms, qcall(t, ta.url, "q", "pull", `{"max":10}`).Messages...)
		return len(ms) == 2
	})
	byID := map[string]pulled{}
	for _, m := range ms {
		byID[m.ID] = m
		if m.Attempt != 1 {
			t.Fatalf("first delivery of %s: attempt %d", m.ID, m.Attempt)
		}
	}
	if r := qcall(t, ta.url, "q", "nack", map[string]any{"receipts": []string{byID[a].Receipt}, "delay": "1h"}); r.status != 200 || r.Nacked != 1 {
		t.Fatalf("nack: %+v", r)
	}
	img2 := crashImage(t, img) // kill -9: a delayed for 1h, b leased (attempt 1)
	ta.stop(t)

	ta = startAgentSpool(t, img2, withQueues(t, img2, Options{}, QueueSpec{Name: "q"}), so)
	var back []pulled
	waitFor(t, "a message back", func() bool {
		back = append(back, qcall(t, ta.url, "q", "pull", `{"max":10,"wait":"1s"}`).Messages...)
		return len(back) > 0
	})
	back = append(back, qcall(t, ta.url, "q", "pull", `{"max":10,"wait":"500ms"}`).Messages...)
	for _, m := range back {
		switch m.ID {
		case a:
			t.Errorf("a (nacked with a 1h delay before the kill -9) handed out again at once, attempt %d", m.Attempt)
		case b:
			if m.Attempt != 2 {
				t.Errorf("b (delivered once before the kill -9) handed out with attempt %d, want 2", m.Attempt)
			}
		}
	}
}

// After a machine crash cut the spool's tail below a checkpointed
// through (10, epoch 1), the new records 6..10 (epoch 2) are acknowledged
// and let go, and through moves to (10, epoch 2): a checkpoint leaves
// their acks out (they are no slots any more) and relies on through, so
// a kill -9 before the spool cursor's next persist must not hand them out
// again. (through moved only when the sequence grew, stayed at (10,
// epoch 1), which does not cover epoch 2, and the five came back.)
func TestQueueAcksOfAReusedSequenceSurviveACheckpointAndKill9(t *testing.T) {
	dir := t.TempDir()
	so := spool.Options{MaxBytes: 256 << 20, CursorSyncInterval: time.Hour}
	ta := startAgentSpool(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q"}), so)
	pushPullAck(t, ta, 10, func(i int) string { return fmt.Sprintf(`{"n":%d}`, i) })
	checkpointThrough(t, ta, 10) // through = (10, epoch 1)
	img := crashImage(t, dir)
	ta.stop(t)
	cutSpoolTail(t, img, 5) // machine crash: records 6..10 were not synced

	ta = startAgentSpool(t, img, withQueues(t, img, Options{}, QueueSpec{Name: "q"}), so)
	ids := pushPullAck(t, ta, 5, func(i int) string { return fmt.Sprintf(`{"new":%d}`, i) }) // seqs 6..10, epoch 2
	checkpointThrough(t, ta, 10)
	img2 := crashImage(t, img) // kill -9
	ta.stop(t)

	ta = startAgentSpool(t, img2, withQueues(t, img2, Options{}, QueueSpec{Name: "q"}), so)
	r := qcall(t, ta.url, "q", "pull", `{"max":100,"wait":"1s"}`)
	if len(r.Messages) != 0 {
		t.Fatalf("after a kill -9, %d acknowledged messages came back (first %s, attempt %d; acked ids %v)", len(r.Messages), r.Messages[0].ID, r.Messages[0].Attempt, ids)
	}
}
