package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// TestCallbackOfRecordQuarantinedWithLostMetaAfterRestart: record 1
// at epoch 1, records 2..4 (callbacks) at epoch 10 fill the first segment
// (empty tail). Record 2's framing is damaged and meta is lost: the open
// quarantines 2..4, keeps the note at MaxUint32 and runs at epoch 2 (the
// only parsed record has epoch 1). The receiver is down until the next
// restart; that open reads the meta the previous one wrote and leaves the
// earlier open's note at MaxUint32 (settled to its epoch, 3, below the
// records' 10, the owed reports said delivered for records the sink never
// got).
func TestCallbackOfRecordQuarantinedWithLostMetaAfterRestart(t *testing.T) {
	dir := t.TempDir()
	cbs := newCBServer(t)
	cbs.fail = 1 << 30
	g := newGateSink(true)
	opts := func() Options {
		return Options{CallbackBackoff: 20 * time.Millisecond, CallbackAttempts: 1 << 20,
			Sinks: []SinkSpec{g.spec()}}
	}
	so := spool.Options{SegmentBytes: 4096, MaxBytes: 64 << 20}
	ta := startAgentSpool(t, dir, opts(), so)
	if r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("r4q-1-"+strings.Repeat("v", 1100)), nil); r.status != 202 {
		t.Fatalf("push 1: %+v", r)
	}
	ta.stop(t)
	for ta.sp.Epoch() < 9 {
		ta = startAgentSpool(t, dir, opts(), so)
		ta.stop(t)
	}
	ta = startAgentSpool(t, dir, opts(), so)
	ids := pushWithCallbacks(t, ta, cbs.srv.URL, "r4q", 2, 4, 1100)
	spoolDir := ta.sp.Dir()
	t.Logf("records pushed at epoch %d: %v", ta.sp.Epoch(), ids)
	ta.stop(t)
	damageEnvelope(t, dir, "r4q-2-")
	if err := os.WriteFile(filepath.Join(spoolDir, "meta"), []byte("{garbage"), 0o640); err != nil {
		t.Fatal(err)
	}
	g.setShut(false)
	ta = startAgentSpool(t, dir, opts(), so)
	if q := ta.sp.Recovery().Quarantined; len(q) != 1 || q[0].FirstLost != 2 || q[0].LostRecords != 3 {
		t.Fatalf("setup: quarantined %+v", q)
	}
	if r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("r4q-new"), nil); r.status != 202 {
		t.Fatalf("push: %+v", r)
	}
	f := ta.a.fwds[0]
	waitFor(t, "cursor past the quarantine", func() bool { return f.cursor.Acked() >= ta.sp.LastSeq() })
	t.Logf("epoch of the open without meta: %d", ta.sp.Epoch())
	ta.stop(t)

	cbs.mu.Lock()
	cbs.fail = 0
	cbs.mu.Unlock()
	ta = startAgentSpool(t, dir, opts(), so)
	defer ta.stop(t)
	t.Logf("epoch of the next open: %d; note %q", ta.sp.Epoch(), readNote(spoolDir))
	for _, id := range ids {
		waitFor(t, "the report of "+id, func() bool { return cbs.reported(id) })
		if rep := cbs.byID()[id]; rep.Status == "delivered" {
			t.Errorf("%s, quarantined and never delivered (sink got %v), reported %s %+v", id, g.ids(), rep.Status, rep.Sinks)
		}
	}
}

func readNote(spoolDir string) string {
	b, _ := os.ReadFile(filepath.Join(spoolDir, "lost-records"))
	return string(b)
}
