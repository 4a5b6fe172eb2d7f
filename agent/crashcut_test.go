package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// What is kept by a message's id beside the spool, in stores of their own
// that sync apart from it, outlives a machine crash that cut the spool's
// unsynced tail (SPOOL_SYNC=interval or never), and the cut sequences are
// used again at a later epoch. These tests cut the tail of a crash image,
// as TestQueueThroughComparesTheEpoch does.

// Callback reports of pushes the crash cut are sent, and say unknown
// (spool_cut): they never reached a consumer, and the message now at one
// of their sequences, acknowledged, is another; the other sequence is free
// and no cursor passes it. (The first said delivered: the report's status
// went by sequence alone; the second waited for the cursor.)
func TestCallbackReportOfAPushACrashCutSaysSpoolCut(t *testing.T) {
	cbs := newCBServer(t)
	dir := t.TempDir()
	so := spool.Options{MaxBytes: 256 << 20, CursorSyncInterval: time.Hour}
	opts := func(d string) Options {
		return withQueues(t, d, Options{CallbackBackoff: 5 * time.Millisecond}, QueueSpec{Name: "q"})
	}
	ta := startAgentSpool(t, dir, opts(dir), so)
	pushPullAck(t, ta, 5, func(i int) string { return fmt.Sprintf(`{"n":%d}`, i) })
	var lost []string
	for _, v := range []string{`"lost"`, `"lost too"`} {
		r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte(v), map[string]string{"Sluice-Callback": cbs.srv.URL + "/cb"})
		if r.status != 202 {
			t.Fatalf("push: %d", r.status)
		}
		lost = append(lost, r.ids[0])
	}
	if mustSeq(t, lost[0]) != 6 || mustSeq(t, lost[1]) != 7 {
		t.Fatalf("pushes with callbacks at %s, %s; want seqs 6, 7", lost[0], lost[1])
	}
	waitFor(t, "the reports stored", func() bool { return ta.a.cb.store.LastSeq() >= 2 })
	img := crashImage(t, dir)
	ta.stop(t)
	cutSpoolTail(t, img, 5) // machine crash: records 6 and 7 (the pushes with callbacks) were not synced

	ta = startAgentSpool(t, img, opts(img), so)
	ids := pushPullAck(t, ta, 1, func(int) string { return `{"new":1}` }) // seq 6 again, a later epoch
	if mustSeq(t, ids[0]) != 6 {
		t.Fatalf("new message at %d, want 6 (reused)", mustSeq(t, ids[0]))
	}
	for _, id := range lost {
		var rep Report
		waitFor(t, "the report of "+id, func() bool {
			var sent bool
			rep, sent = cbs.byID()[id]
			return sent
		})
		if rep.Status != "unknown" || rep.Sinks["q"].Reason != "spool_cut" {
			t.Errorf("report of %s (cut by the crash; seq 6 is %s now): %s %+v, want unknown, reason spool_cut", id, ids[0], rep.Status, rep.Sinks)
		}
	}
}

// A retry with the Idempotency-Key of a push the crash cut is stored
// again and handed out: the key's index (always fsynced) kept the cut
// push's id. (The retry was answered 202 with that id, and nothing was
// stored.)
func TestIdempotentRetryOfAPushACrashCutIsStored(t *testing.T) {
	key := map[string]string{"Idempotency-Key": "order-17"}
	r, ta := cutKeyedPush(t, "/v1/topics/t", "", []byte(`"pay"`), key, 5) // record 6, the keyed push, cut
	first := r.ids[0]
	r = do(t, "POST", ta.url+"/v1/topics/t", "", []byte(`"pay"`), key) // the client's retry: same key, same body
	if r.status != 202 || len(r.ids) != 1 || r.ids[0] == first {
		t.Fatalf("retry with the key of a push the crash cut: %d %s, ids %v (the cut push was %s)", r.status, r.code, r.ids, first)
	}
	var got []pulled
	waitFor(t, "the retried push handed out", func() bool {
		got = append(got, qcall(t, ta.url, "q", "pull", `{"max":10,"wait":"100ms"}`).Messages...)
		return len(got) > 0
	})
	if got[0].ID != r.ids[0] || string(got[0].Value) != `"pay"` {
		t.Fatalf("handed out %s %s, want %s \"pay\"", got[0].ID, got[0].Value, r.ids[0])
	}
	// A second retry is the same request as the first: the key holds again.
	if r2 := do(t, "POST", ta.url+"/v1/topics/t", "", []byte(`"pay"`), key); r2.status/100 != 2 || len(r2.ids) != 1 || r2.ids[0] != r.ids[0] {
		t.Fatalf("second retry: %d, ids %v, want %s", r2.status, r2.ids, r.ids[0])
	}
}

// cutKeyedPush starts an agent with queue "q" whose spool syncs on an
// interval, pushes, pulls and acknowledges five messages, pushes body to
// path with the Idempotency-Key header in key, waits until the key is in
// the index, and starts the agent again on a crash image whose spool kept
// its first keep records (a machine crash cut the rest). It returns the
// keyed push's reply and the agent on the image.
func cutKeyedPush(t *testing.T, path, ctype string, body []byte, key map[string]string, keep int) (reply, *testAgent) {
	t.Helper()
	dir := t.TempDir()
	so := spool.Options{MaxBytes: 256 << 20, CursorSyncInterval: time.Hour}
	opts := func(d string) Options { return withQueues(t, d, Options{}, QueueSpec{Name: "q"}) }
	ta := startAgentSpool(t, dir, opts(dir), so)
	pushPullAck(t, ta, 5, func(i int) string { return fmt.Sprintf(`{"n":%d}`, i) })
	r := do(t, "POST", ta.url+path, ctype, body, key)
	if r.status != 202 {
		t.Fatalf("keyed push: %d %s %v", r.status, r.code, r.ids)
	}
	waitFor(t, "the key copied to the index", func() bool { return ta.a.idemSt.copied.Load() >= 1 })
	img := crashImage(t, dir)
	ta.stop(t)
	cutSpoolTail(t, img, keep)
	return r, startAgentSpool(t, img, opts(img), so)
}
