package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// A retry with the Idempotency-Key of a push a machine crash cut from the
// spool's tail is stored again also when the push's message kept a chained
// id (an upstream agent's), which names no position here: the key's index
// entry says where the push's records were. (It named the chained id only,
// the key was kept, and the retry was answered as a replay.)
func TestIdempotentRetryOfAChainedPushACrashCutIsStored(t *testing.T) {
	key := map[string]string{"Idempotency-Key": "order-chained"}
	body := []byte(`{"messages":[{"topic":"t","value":"pay","id":"upstreamagent-3-41"}]}`)
	_, ta := cutKeyedPush(t, "/v1/messages", "application/json", body, key, 5) // record 6, the keyed chained push, cut
	retryStoredAgain(t, ta, body, key)
	var got []pulled
	waitFor(t, "the retried push handed out", func() bool {
		got = append(got, qcall(t, ta.url, "q", "pull", `{"max":10,"wait":"100ms"}`).Messages...)
		return len(got) > 0
	})
	if len(got) != 1 || string(got[0].Value) != `"pay"` {
		t.Fatalf("after the retry the queue handed out %d messages %+v, want the retried \"pay\" (the crash cut the first push)", len(got), got)
	}
}

// A batch the crash cut part way is stored again whole (README,
// "Idempotency keys") also when its last message kept a chained id. (The
// last id was chained and the first one was in the spool: the key was
// kept, the retry was a replay, and the cut message never came.)
func TestIdempotentRetryOfABatchACrashCutPartWayIsStoredWhole(t *testing.T) {
	key := map[string]string{"Idempotency-Key": "batch-mixed"}
	body := []byte(`{"messages":[{"topic":"t","value":"first"},{"topic":"t","value":"second","id":"upstreamagent-3-41"}]}`)
	r, ta := cutKeyedPush(t, "/v1/messages", "application/json", body, key, 6) // record 7, the batch's second message, cut
	if len(r.ids) != 2 || mustSeq(t, r.ids[0]) != 6 {
		t.Fatalf("push: %v, want 2 ids, the first at seq 6", r.ids)
	}
	retryStoredAgain(t, ta, body, key)
	var vals []string
	waitFor(t, "the batch's second message (cut by the crash)", func() bool {
		for _, m := range qcall(t, ta.url, "q", "pull", `{"max":10,"wait":"100ms"}`).Messages {
			vals = append(vals, string(m.Value))
		}
		return containsStr(vals, `"second"`)
	})
}

// An Idempotency-Key holds across restarts (guarantee 8) for a push that
// kept, in its "id" field, the id of a message a crash cut from this
// spool (pulled before the crash, pushed again after it): the push is at a
// new position, and only that position says whether it was cut. (The kept
// id was taken for the position, the key was forgotten at a plain
// restart, and the retry was stored twice.)
func TestIdempotencyKeyOfAPushKeepingACutIDHoldsAfterARestart(t *testing.T) {
	dir := t.TempDir()
	so := spool.Options{MaxBytes: 256 << 20, CursorSyncInterval: time.Hour}
	opts := func(d string) Options { return withQueues(t, d, Options{}, QueueSpec{Name: "q"}) }
	ta := startAgentSpool(t, dir, opts(dir), so)
	pushPullAck(t, ta, 5, func(i int) string { return fmt.Sprintf(`{"n":%d}`, i) })
	pulledID := pushKey(t, ta.url, "t", "", `"A"`) // seq 6, handed to a consumer before the crash
	img := crashImage(t, dir)
	ta.stop(t)
	cutSpoolTail(t, img, 5) // machine crash: record 6 was not synced

	ta = startAgentSpool(t, img, opts(img), so)
	key := map[string]string{"Idempotency-Key": "repush-A"}
	body := []byte(`{"messages":[{"topic":"u","value":"A","id":"` + pulledID + `"}]}`)
	r := do(t, "POST", ta.url+"/v1/messages", "application/json", body, key)
	if r.status != 202 {
		t.Fatalf("push: %d %s", r.status, r.code)
	}
	waitFor(t, "the key copied to the index", func() bool { return ta.a.idemSt.copied.Load() >= 1 })
	ta.stop(t)

	ta = startAgentSpool(t, img, opts(img), so) // a plain restart: nothing cut
	last := ta.a.sp.LastSeq()
	r2 := do(t, "POST", ta.url+"/v1/messages", "application/json", body, key) // the client's retry
	if r2.status/100 != 2 || r2.header.Get("Sluice-Idempotent-Replay") != "true" || ta.a.sp.LastSeq() != last {
		t.Fatalf("retry within the window after a restart: %d replay=%q, spool last %d -> %d: the push (in the spool) was stored twice",
			r2.status, r2.header.Get("Sluice-Idempotent-Replay"), last, ta.a.sp.LastSeq())
	}
}

// retryStoredAgain sends the client's retry of a keyed push to
// /v1/messages and fails unless it was taken as a new push (202, not a
// replay): its first copy was cut.
func retryStoredAgain(t *testing.T, ta *testAgent, body []byte, key map[string]string) {
	t.Helper()
	r := do(t, "POST", ta.url+"/v1/messages", "application/json", body, key)
	if r.status != 202 {
		t.Fatalf("retry: %d %s", r.status, r.code)
	}
	if r.header.Get("Sluice-Idempotent-Replay") == "true" {
		t.Errorf("retry of a keyed push the crash cut (whole or part way) answered as a replay (ids %v): nothing stored", r.ids)
	}
}
