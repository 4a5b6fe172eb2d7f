package agent

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// Under drop_oldest, a drop does not take a keyed push's records while the
// copier has read them but its copy into the index is not durable yet (the
// index store's fsync is held here, a slow disk): the append that needs
// the drop is refused (503 spool_full) until the copy is durable and the
// copier acknowledged it. Then a kill -9 keeps the key: the retry is a
// replay. (The pin held only until the copier read the records: the drop
// moved the copier's cursor past them during the copy, a kill -9 then lost
// the key, and the retry was stored twice.)
func TestIdempotencyKeyOfADropDuringItsCopySurvivesKill9(t *testing.T) {
	dir := t.TempDir()
	so := spool.Options{MaxBytes: 1 << 20, FullPolicy: spool.DropOldest, SegmentBytes: 4 << 20}

	var armed atomic.Bool
	held := make(chan struct{}, 1)
	release := make(chan struct{})
	var released atomic.Bool
	io := IdempotencyStoreOptions(0, quiet())
	io.OnFsync = func(time.Duration) {
		if armed.CompareAndSwap(true, false) {
			held <- struct{}{}
			<-release
		}
	}
	idx, err := spool.Open(filepath.Join(dir, "spool", IdempotencyStoreDir), io)
	if err != nil {
		t.Fatal(err)
	}
	ta := startAgentSpool(t, dir, withQueues(t, dir, Options{Idempotency: idx}, QueueSpec{Name: "q"}), so)
	defer func() {
		if released.CompareAndSwap(false, true) {
			close(release)
		}
	}()

	// The index store's commit goroutine is in a slow fsync (an unrelated
	// record: not an index entry, skipped at load).
	armed.Store(true)
	go func() { _, _ = idx.Append(context.Background(), []byte("junk")) }()
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("index fsync not held")
	}

	key := map[string]string{"Idempotency-Key": "order-20"}
	body := []byte(`{"messages":[{"topic":"t","value":"` + strings.Repeat("a", 500<<10) + `"},{"topic":"t","value":"second"}]}`)
	if r := do(t, "POST", ta.url+"/v1/messages", "application/json", body, key); r.status != 202 {
		t.Fatalf("keyed push: %d %s", r.status, r.code)
	}
	// The filler's drop would take the keyed push's records: refused while
	// the copy is on its way, whether the copier has read them yet or not
	// (it reads every 20 ms tick; these tries span more than ten).
	filler := []byte(`{"messages":[{"topic":"t","value":"` + strings.Repeat("f", 600<<10) + `"}]}`)
	for range 10 {
		if r := do(t, "POST", ta.url+"/v1/messages", "application/json", filler, nil); r.status != 503 || r.code != "spool_full" {
			t.Fatalf("filler while the key's copy is not durable: %d %s, want 503 spool_full (dropped %d)", r.status, r.code, ta.a.sp.Stats().Dropped)
		}
		time.Sleep(25 * time.Millisecond)
	}
	if released.CompareAndSwap(false, true) {
		close(release)
	}
	waitFor(t, "the filler accepted once the key is copied", func() bool {
		r := do(t, "POST", ta.url+"/v1/messages", "application/json", filler, nil)
		if r.status != 202 && r.code != "spool_full" {
			t.Fatalf("filler: %d %s", r.status, r.code)
		}
		return r.status == 202
	})
	if ta.a.sp.Stats().Dropped == 0 || ta.a.idemSt.copied.Load() == 0 {
		t.Fatalf("dropped %d, copied %d: want the keyed push dropped after its key was copied", ta.a.sp.Stats().Dropped, ta.a.idemSt.copied.Load())
	}
	// Cursors are persisted in the background; do it now.
	if err := ta.a.sp.Flush(); err != nil {
		t.Fatal(err)
	}
	img := crashImage(t, dir) // kill -9 now
	ta.stop(t)

	ta = startAgentSpool(t, img, withQueues(t, img, Options{}, QueueSpec{Name: "q"}), so)
	last := ta.a.sp.LastSeq()
	r := do(t, "POST", ta.url+"/v1/messages", "application/json", body, key)
	if r.status/100 != 2 || r.header.Get("Sluice-Idempotent-Replay") != "true" || ta.a.sp.LastSeq() != last {
		t.Fatalf("retry with the key of an acknowledged push after a kill -9: %d %s replay=%q, spool last %d -> %d: stored twice",
			r.status, r.code, r.header.Get("Sluice-Idempotent-Replay"), last, ta.a.sp.LastSeq())
	}
}
