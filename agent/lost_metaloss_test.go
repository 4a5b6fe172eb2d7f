package agent

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// damageEnvelope overwrites the envelope magic of the spool record
// carrying marker (the last "SL\x01\x00" before it): its framing no longer
// parses.
func damageEnvelope(t *testing.T, dir, marker string) {
	t.Helper()
	overwriteNear(t, dir, marker, []byte("XX"), func(b []byte, i int) int {
		j := bytes.LastIndex(b[:i], []byte("SL\x01\x00"))
		if j < 0 {
			t.Fatalf("no envelope before %q", marker)
		}
		return j
	})
}

// TestKeptIDLostBeforeMetaLossNeverReadsDelivered: chained
// messages (pushed with their own ids, kept in SPOOL_DIR/kept-ids) wait
// on a sink that refuses them. Record 2's framing is damaged in a closed
// segment; the next start quarantines the rest of that segment and notes
// it lost under the spool's id; the cursor passes the records and their
// statuses read unknown (spool_damaged). Then the spool's meta becomes
// unreadable: the spool takes a new id, but the kept ids still map to the
// same (epoch, sequence) positions and the cursor is still past them. The
// note stays (it was left out for the new id, and the records never
// delivered read delivered).
// pushWithCallbacks pushes messages prefix-i-vvv… (size v's) for i from lo
// to hi, each with a callback to url, and waits until their reports are
// copied to the callback store. It returns their ids.
func pushWithCallbacks(t *testing.T, ta *testAgent, url, prefix string, lo, hi, size int) []string {
	t.Helper()
	var ids []string
	for i := lo; i <= hi; i++ {
		v := fmt.Sprintf("%s-%d-%s", prefix, i, strings.Repeat("v", size))
		r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte(v), map[string]string{"Sluice-Callback": url})
		if r.status != 202 {
			t.Fatalf("push %d: %+v", i, r)
		}
		ids = append(ids, r.ids[0])
	}
	waitFor(t, "the reports copied to the callback store", func() bool { return ta.a.cb.cursor.Acked() >= ta.sp.LastSeq() })
	return ids
}

func TestKeptIDLostBeforeMetaLossNeverReadsDelivered(t *testing.T) {
	dir := t.TempDir()
	g := newGateSink(true)
	opts := func() Options {
		return Options{Sinks: []SinkSpec{g.spec()}}
	}
	so := spool.Options{SegmentBytes: 4096, MaxBytes: 64 << 20}
	ta := startAgentSpool(t, dir, opts(), so)
	big := strings.Repeat("v", 1200)
	for i := 1; i <= 6; i++ {
		body := fmt.Sprintf(`{"messages":[{"topic":"t","value":"%s","id":"r3-up-%d"}]}`, big, i)
		if r := do(t, "POST", ta.url+"/v1/messages", "application/json", []byte(body), nil); r.status != 202 {
			t.Fatalf("push %d: %+v", i, r)
		}
	}
	ta.stop(t)
	damageEnvelope(t, dir, "r3-up-2")

	g.setShut(false)
	ta = startAgentSpool(t, dir, opts(), so)
	if q := ta.sp.Recovery().Quarantined; len(q) != 1 || q[0].FirstLost != 2 {
		t.Fatalf("setup: quarantined %+v", q)
	}
	f := ta.a.fwds[0]
	waitFor(t, "cursor past the quarantine", func() bool { return f.cursor.Acked() >= ta.sp.LastSeq() })
	st := getStatus(t, ta, "r3-up-2")
	if st.Status != "unknown" || st.Sinks["mem"].Reason != "spool_damaged" {
		t.Fatalf("setup: r3-up-2 before the meta loss: %+v", st)
	}
	t.Logf("delivered %v", g.ids())
	spoolDir := ta.sp.Dir()
	ta.stop(t)
	if err := os.WriteFile(filepath.Join(spoolDir, "meta"), []byte("{garbage"), 0o640); err != nil {
		t.Fatal(err)
	}

	ta = startAgentSpool(t, dir, opts(), so)
	defer ta.stop(t)
	st = getStatus(t, ta, "r3-up-2")
	if st.Status == "delivered" {
		t.Errorf("r3-up-2, quarantined and never delivered (sink got %v), reads %+v after the spool's meta was lost (note left out as another spool's)", g.ids(), st)
	}
}

// TestCallbackOfRecordLostBeforeMetaLossNeverReadsDelivered: as
// above, with local ids and a callback each: the receiver is down while the
// quarantine's records read unknown, so their reports stay owed (the
// callback store keeps the record's position). The meta is lost before the
// receiver is back: the report says delivered for a message the sink never
// got (statusAt looks at the position, whatever the spool's id).
func TestCallbackOfRecordLostBeforeMetaLossNeverReadsDelivered(t *testing.T) {
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
	ids := pushWithCallbacks(t, ta, cbs.srv.URL, "r3cb", 1, 6, 1200)
	ta.stop(t)
	damageEnvelope(t, dir, "r3cb-2-")

	g.setShut(false)
	ta = startAgentSpool(t, dir, opts(), so)
	if q := ta.sp.Recovery().Quarantined; len(q) != 1 || q[0].FirstLost != 2 {
		t.Fatalf("setup: quarantined %+v", q)
	}
	f := ta.a.fwds[0]
	waitFor(t, "cursor past the quarantine", func() bool { return f.cursor.Acked() >= ta.sp.LastSeq() })
	if st := getStatus(t, ta, ids[1]); st.Status != "unknown" {
		t.Fatalf("setup: %s before the meta loss: %+v", ids[1], st)
	}
	spoolDir := ta.sp.Dir()
	ta.stop(t)
	if err := os.WriteFile(filepath.Join(spoolDir, "meta"), []byte("{garbage"), 0o640); err != nil {
		t.Fatal(err)
	}
	cbs.mu.Lock()
	cbs.fail = 0
	cbs.mu.Unlock()
	ta = startAgentSpool(t, dir, opts(), so)
	defer ta.stop(t)
	waitFor(t, "the report of "+ids[1], func() bool { return cbs.reported(ids[1]) })
	if rep := cbs.byID()[ids[1]]; rep.Status == "delivered" {
		t.Errorf("%s, quarantined and never delivered (sink got %v), reported %+v after the spool's meta was lost", ids[1], g.ids(), rep)
	}
}

// TestCallbackOfRecordQuarantinedWithLostMetaNeverReadsDelivered:
// the spool-level break (spool/lost_review3_test.go) seen by a client:
// four records with callbacks, of epoch 2, fill the first segment (the
// tail is left empty); record 2's framing is damaged and meta is lost. The
// open quarantines 2..4 and notes them under its new id, but its epoch
// stays 1 (the last record is among those quarantined) and settleLost
// lowers the note to epoch 1: the owed reports of records 2..4, sent once
// the receiver answers, say delivered.
func TestCallbackOfRecordQuarantinedWithLostMetaNeverReadsDelivered(t *testing.T) {
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
	ta.stop(t) // epoch 1, no records
	ta = startAgentSpool(t, dir, opts(), so)
	ids := pushWithCallbacks(t, ta, cbs.srv.URL, "r3q", 1, 4, 1100)
	spoolDir := ta.sp.Dir()
	ta.stop(t)
	segs, _ := filepath.Glob(filepath.Join(spoolDir, "wal", "*"))
	t.Logf("ids %v, segments %d", ids, len(segs))
	damageEnvelope(t, dir, "r3q-2-")
	if err := os.WriteFile(filepath.Join(spoolDir, "meta"), []byte("{garbage"), 0o640); err != nil {
		t.Fatal(err)
	}
	g.setShut(false)
	cbs.mu.Lock()
	cbs.fail = 0
	cbs.mu.Unlock()
	ta = startAgentSpool(t, dir, opts(), so)
	defer ta.stop(t)
	if q := ta.sp.Recovery().Quarantined; len(q) != 1 || q[0].FirstLost != 2 {
		t.Fatalf("setup: quarantined %+v", q)
	}
	t.Logf("epoch after the lost meta: %d", ta.sp.Epoch())
	// a new push: the cursor passes the quarantined gap to reach it
	if r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("r3q-new"), nil); r.status != 202 {
		t.Fatalf("push: %+v", r)
	}
	for _, id := range ids[1:] {
		waitFor(t, "the report of "+id, func() bool { return cbs.reported(id) })
		if rep := cbs.byID()[id]; rep.Status == "delivered" {
			t.Errorf("%s, quarantined and never delivered (sink got %v), reported %s %+v", id, g.ids(), rep.Status, rep.Sinks)
		}
	}
}
