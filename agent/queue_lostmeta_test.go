package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The spool's meta file is unreadable at a restart. spool.Open goes on
// with a fresh identity and keeps the WAL, its records and the cursors; its
// epoch goes on above the last record's (TestLostMetaKeepsEpochsRising).
// Before (found by review), it started again at epoch 1, so openQueueLog
// took the queue log's acknowledgements for a recreated spool's and let
// them go: B, acknowledged before the restart, was handed out again, and
// A's attempt count started over.
func TestQueueAcksSurviveAnUnreadableSpoolMeta(t *testing.T) {
	dir := t.TempDir()
	opts := func() Options { return withQueues(t, dir, Options{}, QueueSpec{Name: "q", Visibility: time.Hour}) }
	ta := startAgent(t, dir, opts())
	a := pushKey(t, ta.url, "t", "", `"A"`)
	b := pushKey(t, ta.url, "t", "", `"B"`)
	var m []pulled
	waitFor(t, "A and B pulled", func() bool {
		m = append(m, qcall(t, ta.url, "q", "pull", `{"max":2}`).Messages...)
		return len(m) == 2
	})
	for _, x := range m {
		if x.ID == b {
			if r := qcall(t, ta.url, "q", "ack", map[string]any{"receipts": []string{x.Receipt}}); r.Acked != 1 {
				t.Fatalf("ack B: %+v", r)
			}
		}
	}
	spoolDir := ta.a.sp.Dir()
	ta.stop(t)
	if err := os.WriteFile(filepath.Join(spoolDir, "meta"), []byte("{garbage"), 0o640); err != nil {
		t.Fatal(err)
	}

	ta = startAgent(t, dir, opts())
	var got []pulled
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		got = append(got, qcall(t, ta.url, "q", "pull", `{"max":10,"wait":"200ms"}`).Messages...)
	}
	for _, x := range got {
		if x.Value != nil && string(x.Value) == `"B"` {
			t.Errorf("B (acknowledged before the restart) handed out again after the spool's meta was unreadable: %+v; its status reads %+v",
				x, getStatus(t, ta, x.ID).Sinks["q"])
		}
	}
	if len(got) != 1 || string(got[0].Value) != `"A"` {
		t.Fatalf("after the restart got %d messages, want only A (%s)", len(got), a)
	}
	if got[0].Attempt != 2 {
		t.Errorf("A handed out again as attempt %d, want 2 (its first attempt was before the restart)", got[0].Attempt)
	}
}
