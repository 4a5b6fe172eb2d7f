package agent

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// An Idempotency-Key holds across a plain restart when a drop_oldest cap
// drops records right behind the keyed push: the copier's cursor is pinned,
// so a drop never takes the record that carries the key before the copier
// read it (the append that needs such a drop is refused, 503 spool_full,
// and the client retries). A key taken unread was never copied to the
// index; after a restart the retry stored the request again (its message
// still in the spool came twice). Each attempt races the two pushes with a
// different stagger, as the drop must fall between the copier's ticks.
func TestIdempotencyKeyOfAPushADropCameRightBehindHoldsAfterARestart(t *testing.T) {
	for attempt := range 8 {
		dropBehindKeyedPush(t, attempt)
	}
}

func dropBehindKeyedPush(t *testing.T, attempt int) {
	dir := t.TempDir()
	so := spool.Options{MaxBytes: 1 << 20, FullPolicy: spool.DropOldest, SegmentBytes: 4 << 20}
	opts := func(d string) Options { return withQueues(t, d, Options{}, QueueSpec{Name: "q"}) }
	ta := startAgentSpool(t, dir, opts(dir), so)

	key := map[string]string{"Idempotency-Key": "order-77"}
	body := []byte(`{"messages":[{"topic":"t","value":"` + strings.Repeat("a", 500<<10) + `"},{"topic":"t","value":"second"}]}`)
	// Right behind it: the cap drops the oldest record (the keyed push's
	// first, which carries the key) to make room.
	filler := []byte(`{"messages":[{"topic":"t","value":"` + strings.Repeat("f", 600<<10) + `"}]}`)
	// Each is retried while refused (503 spool_full: a drop would take
	// what the copier has not read yet), as a client does.
	until := func(what string, b []byte, h map[string]string) reply {
		var r reply
		waitFor(t, what+" accepted", func() bool {
			r = do(t, "POST", ta.url+"/v1/messages", "application/json", b, h)
			if r.status != 202 && r.code != "spool_full" {
				t.Errorf("%s: %d %s", what, r.status, r.code)
				return true
			}
			return r.status == 202
		})
		return r
	}
	kr := make(chan reply, 1)
	go func() { kr <- until("the keyed push", body, key) }()
	time.Sleep(time.Duration(attempt) * time.Millisecond)
	until("the filler", filler, nil)
	if r := <-kr; r.status != 202 || len(r.ids) != 2 {
		t.Fatalf("keyed push: %d %s %v", r.status, r.code, r.ids)
	}
	waitFor(t, "the key copied to the index", func() bool { return ta.a.idemSt.copied.Load() >= 1 })
	ta.stop(t)

	ta = startAgentSpool(t, dir, opts(dir), so) // a plain restart
	last := ta.a.sp.LastSeq()
	r := do(t, "POST", ta.url+"/v1/messages", "application/json", body, key) // the client's retry, within the window
	if r.status/100 != 2 || r.header.Get("Sluice-Idempotent-Replay") != "true" || ta.a.sp.LastSeq() != last {
		t.Fatalf("attempt %d: retry with the key after a plain restart: %d %s replay=%q, spool last %d -> %d: stored twice",
			attempt, r.status, r.code, r.header.Get("Sluice-Idempotent-Replay"), last, ta.a.sp.LastSeq())
	}
	ta.stop(t)
}

// A key forgotten after a crash cut its push, pushed again (stored at the
// reused sequence, a later epoch), is honoured after a second, plain
// restart: the index holds both entries, the older one is judged cut (its
// sequence holds another epoch's record) and the newer one wins.
func TestIdempotencyKeyStoredAgainAfterACutHoldsAcrossASecondRestart(t *testing.T) {
	dir := t.TempDir()
	so := spool.Options{MaxBytes: 256 << 20, CursorSyncInterval: time.Hour}
	opts := func(d string) Options { return withQueues(t, d, Options{}, QueueSpec{Name: "q"}) }
	ta := startAgentSpool(t, dir, opts(dir), so)
	pushPullAck(t, ta, 5, func(i int) string { return fmt.Sprintf(`{"n":%d}`, i) })
	key := map[string]string{"Idempotency-Key": "again"}
	body := []byte(`{"messages":[{"topic":"t","value":"x"},{"topic":"t","value":"y"}]}`)
	if r := do(t, "POST", ta.url+"/v1/messages", "application/json", body, key); r.status != 202 {
		t.Fatalf("push: %d", r.status)
	}
	waitFor(t, "copied", func() bool { return ta.a.idemSt.copied.Load() >= 1 })
	img := crashImage(t, dir)
	ta.stop(t)
	cutSpoolTail(t, img, 6) // the batch cut part way

	ta = startAgentSpool(t, img, opts(img), so)
	if r := do(t, "POST", ta.url+"/v1/messages", "application/json", body, key); r.status != 202 || r.header.Get("Sluice-Idempotent-Replay") == "true" {
		t.Fatalf("retry after the cut: %d replay=%q", r.status, r.header.Get("Sluice-Idempotent-Replay"))
	}
	waitFor(t, "copied", func() bool { return ta.a.idemSt.copied.Load() >= 1 })
	ta.stop(t)
	ta = startAgentSpool(t, img, opts(img), so)
	last := ta.a.sp.LastSeq()
	r := do(t, "POST", ta.url+"/v1/messages", "application/json", body, key)
	if r.header.Get("Sluice-Idempotent-Replay") != "true" || ta.a.sp.LastSeq() != last {
		t.Fatalf("retry after the second restart: %d replay=%q last %d -> %d", r.status, r.header.Get("Sluice-Idempotent-Replay"), last, ta.a.sp.LastSeq())
	}
}
