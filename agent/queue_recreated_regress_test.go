package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A spool recreated in place (its meta, WAL and cursors removed, the files
// beside them left, as in TestStaleAheadLogOfARecreatedSpoolSkipsNothing)
// starts again at epoch 1, sequence 1, so its records carry the very
// (seq, epoch) pairs the old queue log (SPOOL_DIR/queues/<name>) says were
// acknowledged. The queue log lets go of entries of an epoch at or above
// the open's, as the forwarders' status logs do, and writes a checkpoint
// without them. Before (found by review), the queue resolved the new
// messages as if a consumer had acknowledged them: never handed out,
// never dead-lettered, their records reading delivered.
func TestRecreatedSpoolQueueHandsOutItsNewMessages(t *testing.T) {
	dir := t.TempDir()
	opts := func() Options { return withQueues(t, dir, Options{}, QueueSpec{Name: "q"}) }
	ta := startAgent(t, dir, opts())
	for i := range 3 {
		pushKey(t, ta.url, "t", "", fmt.Sprintf(`{"old":%d}`, i))
	}
	var got []pulled
	waitFor(t, "the old messages pulled", func() bool {
		got = append(got, qcall(t, ta.url, "q", "pull", `{"max":10}`).Messages...)
		return len(got) == 3
	})
	var rs []string
	for _, m := range got {
		rs = append(rs, m.Receipt)
	}
	if r := qcall(t, ta.url, "q", "ack", map[string]any{"receipts": rs}); r.Acked != 3 {
		t.Fatalf("ack: %+v", r)
	}
	spoolDir := ta.a.sp.Dir()
	ta.stop(t)

	// The spool is recreated in place: identity, WAL and cursors go.
	for _, name := range []string{"meta", "wal", "cursors"} {
		if err := os.RemoveAll(filepath.Join(spoolDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	ta = startAgent(t, dir, opts())
	var fresh []string
	for i := range 3 {
		fresh = append(fresh, pushKey(t, ta.url, "t", "", fmt.Sprintf(`{"new":%d}`, i)))
	}
	got = nil
	deadline := time.Now().Add(3 * time.Second)
	for len(got) < len(fresh) && time.Now().Before(deadline) {
		got = append(got, qcall(t, ta.url, "q", "pull", `{"max":10,"wait":"500ms"}`).Messages...)
	}
	if len(got) < len(fresh) {
		var sts []string
		for _, id := range fresh {
			sts = append(sts, id+" "+getStatus(t, ta, id).Sinks["q"].Status)
		}
		t.Fatalf("accepted after the spool was recreated: %d of %d messages handed out in 3s (statuses: %v); the stale queue log (%s) named them acknowledged",
			len(got), len(fresh), sts, filepath.Join(dir, "queues", "q"))
	}
}
