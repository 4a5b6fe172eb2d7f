package agent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// crashImage copies the files of a running agent's directory: what a
// kill -9 leaves on disk (the page cache included).
func crashImage(t *testing.T, src string) string {
	t.Helper()
	// A file the agent renames or removes meanwhile (a cursor's temporary
	// file) vanishes between the directory's listing and its copy: copy
	// the whole directory again.
	for try := 1; ; try++ {
		dst, err := copyTree(t.TempDir(), src)
		if err == nil {
			return dst
		}
		if !errors.Is(err, fs.ErrNotExist) || try == 5 {
			t.Fatal(err)
		}
	}
}

func copyTree(dst, src string) (string, error) {
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o750)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, in)
		return errors.Join(err, out.Close())
	})
	return dst, err
}

// TestQueueAckSurvivesCrashAfterCheckpoint: "After kill -9, no
// acknowledged message comes back". An acknowledgement is durable in the
// queue log; the spool cursor that also covers it is persisted only every
// CursorSyncInterval (50 ms by default). A checkpoint of the queue log
// drops every acknowledgement below the cursor's in-memory position, so a
// crash after a checkpoint and before the cursor's next persist hands
// acknowledged messages out again. The cursor interval is widened here so
// that the crash lands in that window every time.
func TestQueueAckSurvivesCrashAfterCheckpoint(t *testing.T) {
	dir := t.TempDir()
	so := spool.Options{MaxBytes: 64 << 20, CursorSyncInterval: time.Hour}
	ta := startAgentSpool(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q"}), so)
	pushPullAck(t, ta, 10, func(i int) string { return fmt.Sprintf(`{"n":%d}`, i) })
	checkpointThrough(t, ta, 10)
	img := crashImage(t, dir) // kill -9 now
	ta.stop(t)

	ta = startAgentSpool(t, img, withQueues(t, img, Options{}, QueueSpec{Name: "q"}), so)
	r := qcall(t, ta.url, "q", "pull", `{"max":100,"wait":"1s"}`)
	if len(r.Messages) != 0 {
		t.Fatalf("after a crash, %d acknowledged messages came back (first %s, attempt %d)", len(r.Messages), r.Messages[0].ID, r.Messages[0].Attempt)
	}
}

// TestQueueLogCheckpointThrough: a checkpoint carries the position up to
// which everything is resolved; one written before it did (no trailing
// position) still reads, with nothing covered.
func TestQueueLogCheckpointThrough(t *testing.T) {
	acked := []attemptRec{{seq: 12, epoch: 2}}
	att := []attemptRec{{seq: 13, epoch: 2, attempt: 3}}
	old := append(encodeAttempts(qlogCheckpoint, acked, false), encodeAttempts(0, att, true)[1:]...)

	st := newLogState()
	st.through = qpos{seq: 99, epoch: 1}
	st.apply(old)
	if st.through != (qpos{}) || st.acked[12] != 2 || st.attempts[13].attempt != 3 {
		t.Fatalf("checkpoint without a position: %+v", st)
	}
	cur := binary.AppendUvarint(binary.AppendUvarint(bytes.Clone(old), 2), 10)
	st.apply(cur)
	if st.through != (qpos{seq: 10, epoch: 2}) || st.acked[12] != 2 || st.attempts[13].attempt != 3 {
		t.Fatalf("checkpoint with a position: %+v", st)
	}
	for _, c := range []struct {
		seq   uint64
		epoch uint32
		want  bool
	}{{10, 2, true}, {3, 1, true}, {11, 2, false}, {9, 3, false}} {
		if got := st.through.covers(c.seq, c.epoch); got != c.want {
			t.Errorf("covers(%d, epoch %d) = %v, want %v", c.seq, c.epoch, got, c.want)
		}
	}
}

// TestQueueNackDelaySurvivesRestart: a message nacked with a delay is not
// handed out again before the delay ends, also after a crash, whether the
// delay is in a checkpoint or in a record after it.
func TestQueueNackDelaySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	so := spool.Options{MaxBytes: 64 << 20}
	ta := startAgentSpool(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q"}), so)
	for i := range 3 {
		pushKey(t, ta.url, "t", "", fmt.Sprintf(`{"n":%d}`, i))
	}
	var got []pulled
	waitFor(t, "3 messages", func() bool {
		got = append(got, qcall(t, ta.url, "q", "pull", `{"max":10}`).Messages...)
		return len(got) == 3
	})
	nack := func(m pulled) {
		t.Helper()
		if r := qcall(t, ta.url, "q", "nack", map[string]any{"receipts": []string{m.Receipt}, "delay": "1h"}); r.Nacked != 1 {
			t.Fatalf("nack: %+v", r)
		}
	}
	nack(got[0])
	q := ta.a.queues[0]
	if err := q.qlog.compact(q.snapshot); err != nil { // the first delay in a checkpoint
		t.Fatal(err)
	}
	nack(got[1])              // the second in a record after it
	img := crashImage(t, dir) // kill -9 now; got[2] is still leased
	ta.stop(t)

	ta = startAgentSpool(t, img, withQueues(t, img, Options{}, QueueSpec{Name: "q"}), so)
	var back []pulled
	waitFor(t, "the leased message back", func() bool {
		back = append(back, qcall(t, ta.url, "q", "pull", `{"max":10,"wait":"1s"}`).Messages...)
		return len(back) > 0
	})
	back = append(back, qcall(t, ta.url, "q", "pull", `{"max":10,"wait":"500ms"}`).Messages...)
	if len(back) != 1 || back[0].ID != got[2].ID {
		t.Fatalf("after a crash got %+v, want only %s: the nacked ones are delayed for an hour", back, got[2].ID)
	}
}

// TestQueueLogDelayEndsWithDelivery: a delay in the log ends with the next
// delivery of the message, and with its acknowledgement.
func TestQueueLogDelayEndsWithDelivery(t *testing.T) {
	st := newLogState()
	far := time.Now().Add(time.Hour).UnixNano()
	st.apply(appendDelays([]byte{qlogNacked}, []delayRec{{seq: 5, epoch: 1, attempt: 1, until: far}, {seq: 6, epoch: 1, attempt: 2, until: far}}))
	st.apply(encodeAttempts(qlogDelivered, []attemptRec{{seq: 5, epoch: 1, attempt: 1}, {seq: 6, epoch: 1, attempt: 3}}, true))
	if _, ok := st.delays[5]; !ok {
		t.Error("the delivery the nack gave back ended its delay")
	}
	if _, ok := st.delays[6]; ok {
		t.Error("a later delivery left the delay in place")
	}
	st.apply(encodeAttempts(qlogAcked, []attemptRec{{seq: 5, epoch: 1}}, false))
	if len(st.delays) != 0 {
		t.Errorf("delays after an ack: %+v", st.delays)
	}
}
