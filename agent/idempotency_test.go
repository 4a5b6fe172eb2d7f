package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/spool"
)

// fsyncGate holds the spool's commit goroutine right after an fsync while
// armed: the records are durable, the append's waiter times out, and the
// outcome (written) is published when the gate opens.
type fsyncGate struct {
	armed   atomic.Bool
	hold    chan struct{}
	entered chan struct{}
}

func newFsyncGate() *fsyncGate {
	return &fsyncGate{hold: make(chan struct{}), entered: make(chan struct{}, 64)}
}

func (g *fsyncGate) onFsync(time.Duration) {
	if g.armed.Load() {
		g.entered <- struct{}{}
		<-g.hold
	}
}

func (g *fsyncGate) open() {
	g.armed.Store(false)
	close(g.hold)
}

// Issue 13, item 4: a push whose append timed out (503 spool_timeout) but
// committed keeps its key: a retry while the outcome is unknown answers
// 503 spool_timeout again without spooling, a retry after it returns the
// original ids, and the spool holds exactly one copy — also after a
// restart. Before the fix the timeout released the key and the retry
// spooled a second copy under a new sluice-id.
func TestIdempotencyRetryAfterSpoolTimeoutKeepsOneCopy(t *testing.T) {
	dir := t.TempDir()
	mem := &memSink{}
	g := newFsyncGate()
	so := spool.Options{AppendTimeout: 100 * time.Millisecond, OnFsync: g.onFsync}
	o := Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}}
	ta := startAgentSpool(t, dir, o, so)
	key := map[string]string{"Idempotency-Key": "pay-4"}

	g.armed.Store(true)
	if r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("once"), key); r.status != 503 || r.code != "spool_timeout" {
		t.Fatalf("first push: %+v, want 503 spool_timeout", r)
	}
	<-g.entered // the record is written and fsynced; its outcome is held
	retry := map[string]string{"Idempotency-Key": "pay-4", "Sluice-Timeout": "0.2"}
	if r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("once"), retry); r.status != 503 || r.code != "spool_timeout" {
		t.Fatalf("retry while the outcome is unknown: %+v, want 503 spool_timeout", r)
	}
	g.open()

	want := formatID(ta.sp.SpoolID(), spool.ID{Epoch: ta.sp.Epoch(), Seq: 1})
	r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("once"), retry)
	if r.status != 202 || len(r.ids) != 1 || r.ids[0] != want || r.header.Get("Sluice-Idempotent-Replay") != "true" {
		t.Fatalf("retry after the commit: %+v, want the original id %s", r, want)
	}
	if n := ta.sp.LastSeq(); n != 1 {
		t.Fatalf("spool holds %d records, want exactly 1", n)
	}
	waitFor(t, "delivery", func() bool { return len(mem.messages()) == 1 })
	ta.stop(t)

	ta = startAgentSpool(t, dir, o, spool.Options{})
	if r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("once"), key); r.status != 202 || len(r.ids) != 1 || r.ids[0] != want {
		t.Fatalf("retry after a restart: %+v, want %s", r, want)
	}
	if n := ta.sp.LastSeq(); n != 1 {
		t.Fatalf("after restart the spool holds %d records, want 1", n)
	}
}

// A timed-out append that then fails (here: the spool cap) releases its
// key: the retry is tried anew (and answered for itself), never replayed.
func TestIdempotencyTimedOutAppendThatFailsReleasesKey(t *testing.T) {
	dir := t.TempDir()
	mem := &memSink{}
	mem.setFail(func([]sink.Message) error { return errors.New("upstream down") })
	g := newFsyncGate()
	so := spool.Options{AppendTimeout: 100 * time.Millisecond, OnFsync: g.onFsync, MaxBytes: 8 << 10}
	ta := startAgentSpool(t, dir, Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}}, so)

	g.armed.Store(true)
	big := []byte(strings.Repeat("a", 5000))
	if r := do(t, "POST", ta.url+"/v1/topics/t", "", big, nil); r.status != 503 || r.code != "spool_timeout" {
		t.Fatalf("first push: %+v", r)
	}
	<-g.entered
	key := map[string]string{"Idempotency-Key": "k-full"}
	second := []byte(strings.Repeat("b", 4000))
	if r := do(t, "POST", ta.url+"/v1/topics/t", "", second, key); r.status != 503 || r.code != "spool_timeout" {
		t.Fatalf("keyed push queued behind the held commit: %+v", r)
	}
	g.open() // the first commits; the second then finds the spool full
	waitFor(t, "the key to be released", func() bool {
		ta.a.idem.mu.Lock()
		defer ta.a.idem.mu.Unlock()
		_, ok := ta.a.idem.entries["k-full"]
		return !ok
	})
	if r := do(t, "POST", ta.url+"/v1/topics/t", "", second, key); r.status != 503 || r.code != "spool_full" {
		t.Fatalf("retry after the failed append: %+v, want it tried anew (503 spool_full)", r)
	}
	if n := ta.sp.LastSeq(); n != 1 {
		t.Fatalf("spool holds %d records, want 1", n)
	}
}

// Issue 13, item 5: a key is honoured after its record was truncated from
// the spool and the agent restarted. Before the fix the index was rebuilt
// from the spool alone and the retry spooled a second copy.
func TestIdempotencyKeyOutlivesTruncationAndRestart(t *testing.T) {
	dir := t.TempDir()
	mem := &memSink{}
	so := spool.Options{SegmentBytes: 4 << 10}
	o := Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}}
	ta := startAgentSpool(t, dir, o, so)
	key := map[string]string{"Idempotency-Key": "order-5"}
	first := do(t, "POST", ta.url+"/v1/topics/t", "application/x-ndjson", []byte("a\nb\n"), key)
	if first.status != 202 || len(first.ids) != 2 {
		t.Fatalf("push: %+v", first)
	}
	batch := []byte(`{"messages":[{"topic":"t","value":1,"id":"upstream-1-7"},{"topic":"t","value":2}]}`)
	bkey := map[string]string{"Idempotency-Key": "batch-5"}
	chained := do(t, "POST", ta.url+"/v1/messages", "application/json", batch, bkey)
	if chained.status != 202 || len(chained.ids) != 2 || chained.ids[0] != "upstream-1-7" {
		t.Fatalf("chained push: %+v", chained)
	}
	filler := []byte(strings.Repeat("f", 1000))
	for i := 0; ta.sp.FirstSeq() <= 4; i++ {
		if r := do(t, "POST", ta.url+"/v1/topics/t", "", filler, nil); r.status != 202 {
			t.Fatalf("filler %d: %+v", i, r)
		}
		if i > 2000 {
			t.Fatalf("spool front never truncated (first seq %d)", ta.sp.FirstSeq())
		}
		if i%20 == 19 {
			waitFor(t, "delivery", func() bool { return len(mem.messages()) == i+5 })
		}
	}
	last := ta.sp.LastSeq()
	ta.stop(t)

	ta = startAgentSpool(t, dir, o, so)
	r := do(t, "POST", ta.url+"/v1/topics/t", "application/x-ndjson", []byte("a\nb\n"), key)
	if r.status != 202 || strings.Join(r.ids, ",") != strings.Join(first.ids, ",") || r.header.Get("Sluice-Idempotent-Replay") != "true" {
		t.Fatalf("retry after truncation and restart: %+v, want ids %v", r, first.ids)
	}
	r = do(t, "POST", ta.url+"/v1/messages", "application/json", batch, bkey)
	if r.status != 202 || strings.Join(r.ids, ",") != strings.Join(chained.ids, ",") {
		t.Fatalf("chained retry after truncation and restart: %+v, want ids %v", r, chained.ids)
	}
	if ta.sp.LastSeq() != last {
		t.Fatalf("retry spooled again: last seq %d, was %d", ta.sp.LastSeq(), last)
	}
}

// The index store forgets keys older than the window and truncates them:
// over rounds of keyed pushes its disk use stays bounded, the memory index
// holds at most the live keys, and an expired key spools anew.
func TestIdempotencyIndexExpiresAndStaysBounded(t *testing.T) {
	dir := t.TempDir()
	mem := &memSink{}
	idx, err := spool.Open(filepath.Join(dir, "idem"), func() spool.Options {
		o := IdempotencyStoreOptions(1000, quiet())
		o.SegmentBytes = 2 << 10
		return o
	}())
	if err != nil {
		t.Fatal(err)
	}
	window := 300 * time.Millisecond
	ta := startAgentSpool(t, dir, Options{
		Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}, Idempotency: idx, IdempotencyWindow: window,
	}, spool.Options{})
	const perRound = 40
	var firstIDs []string
	for round := range 4 {
		for i := range perRound {
			k := map[string]string{"Idempotency-Key": fmt.Sprintf("r%d-%d", round, i)}
			r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("v"), k)
			if r.status != 202 {
				t.Fatalf("round %d push %d: %+v", round, i, r)
			}
			if round == 0 && i == 0 {
				firstIDs = r.ids
			}
		}
		waitFor(t, "keys copied", func() bool { return ta.a.idemSt.copied.Load() == uint64((round+1)*perRound) })
		waitFor(t, "keys expired", func() bool { return idx.Stats().BacklogBytes == 0 })
		if n, _ := ta.a.idem.stats(); n > perRound {
			t.Fatalf("round %d: %d keys in memory, want at most %d", round, n, perRound)
		}
	}
	// A truncation in progress has a file more for a moment (the segment
	// it rewrites): wait for the files to settle at a bound, not one look.
	waitFor(t, "expired segments truncated, at most 4 segment files left", func() bool {
		des, err := os.ReadDir(filepath.Join(dir, "idem", "wal"))
		if err != nil {
			t.Fatal(err)
		}
		return idx.FirstSeq() > 2*perRound && len(des) <= 4
	})
	r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("v"), map[string]string{"Idempotency-Key": "r0-0"})
	if r.status != 202 || r.header.Get("Sluice-Idempotent-Replay") != "" || r.ids[0] == firstIDs[0] {
		t.Fatalf("expired key: %+v, want a new id (first was %v)", r, firstIDs)
	}
}

// Keyed and plain pushes from many clients at once: the copier skips plain
// traffic without reading it, yet copies every key (a key it skipped would
// never be counted), and after a restart every key returns its ids without
// a new copy.
func TestIdempotencyCopierUnderConcurrentTraffic(t *testing.T) {
	dir := t.TempDir()
	mem := &memSink{}
	so := spool.Options{SegmentBytes: 8 << 10, Sync: spool.SyncNever}
	o := Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}}
	ta := startAgentSpool(t, dir, o, so)
	const clients, perClient = 4, 40
	type pushed struct {
		key string
		ids []string
	}
	results := make(chan pushed, clients*perClient)
	errs := make(chan error, 2*clients)
	for c := range clients {
		go func() { // plain traffic
			for i := range 3 * perClient {
				if r := do(t, "POST", ta.url+"/v1/topics/plain", "", []byte(strings.Repeat("p", 300)), nil); r.status != 202 {
					errs <- fmt.Errorf("plain %d/%d: %+v", c, i, r)
					return
				}
			}
			errs <- nil
		}()
		go func() { // keyed requests of 1 to 3 messages
			for i := range perClient {
				k := fmt.Sprintf("c%d-%d", c, i)
				body := strings.Repeat("k\n", 1+i%3)
				r := do(t, "POST", ta.url+"/v1/topics/keyed", "application/x-ndjson", []byte(body), map[string]string{"Idempotency-Key": k})
				if r.status != 202 {
					errs <- fmt.Errorf("keyed %s: %+v", k, r)
					return
				}
				results <- pushed{k, r.ids}
			}
			errs <- nil
		}()
	}
	for range 2 * clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(results)
	waitFor(t, "every key copied", func() bool { return ta.a.idemSt.copied.Load() == clients*perClient })
	last := ta.sp.LastSeq()
	ta.stop(t)

	ta = startAgentSpool(t, dir, o, so)
	for p := range results {
		body := strings.Repeat("k\n", len(p.ids))
		r := do(t, "POST", ta.url+"/v1/topics/keyed", "application/x-ndjson", []byte(body), map[string]string{"Idempotency-Key": p.key})
		if r.status != 202 || strings.Join(r.ids, ",") != strings.Join(p.ids, ",") {
			t.Fatalf("key %s after restart: %+v, want %v", p.key, r, p.ids)
		}
	}
	if ta.sp.LastSeq() != last {
		t.Fatalf("retries spooled again: last seq %d, was %d", ta.sp.LastSeq(), last)
	}
}

// Index entries round-trip in each form: the spool's own ids as a range,
// kept (chained) ids listed one by one with the first record's position,
// and (written by earlier versions) without it.
func TestIdemRecordRoundTrip(t *testing.T) {
	hash := make([]byte, 32)
	hash[0] = 7
	at := time.Unix(0, 1700000000123456789)
	own := idemRecord{key: "k", hash: hash, at: at, ids: []string{"abc-3-10", "abc-3-11", "abc-3-12"}}
	chained := idemRecord{key: "k2", hash: hash, at: at, ids: []string{"abc-3-10", "upstream-1-99"}}
	for _, c := range []struct {
		e     idemRecord
		first spool.ID
	}{{own, spool.ID{Epoch: 3, Seq: 10}}, {chained, spool.ID{Epoch: 3, Seq: 10}}, {own, spool.ID{}}} {
		b := encodeIdemRecord(c.e, "abc", c.first)
		got, err := decodeIdemRecord(b)
		if err != nil || got.key != c.e.key || !got.at.Equal(at) || string(got.hash) != string(hash) ||
			strings.Join(got.ids, ",") != strings.Join(c.e.ids, ",") || got.first != c.first {
			t.Fatalf("round trip of %+v: %+v %v", c.e, got, err)
		}
		for n := range len(b) {
			if _, err := decodeIdemRecord(b[:n]); err == nil {
				t.Fatalf("a %d-byte prefix of a %d-byte entry decoded", n, len(b))
			}
		}
	}
}

func FuzzDecodeIdemRecord(f *testing.F) {
	hash := make([]byte, 32)
	f.Add(encodeIdemRecord(idemRecord{key: "k", hash: hash, ids: []string{"a-1-1"}}, "a", spool.ID{Epoch: 1, Seq: 1}))
	f.Add(encodeIdemRecord(idemRecord{key: "k", hash: hash, ids: []string{"x", "y"}}, "a", spool.ID{}))
	f.Add(encodeIdemRecord(idemRecord{key: "k", hash: hash, ids: []string{"x", "y"}}, "a", spool.ID{Epoch: 2, Seq: 7}))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeIdemRecord(b)
		if err != nil {
			return
		}
		if e.key == "" || len(e.hash) != 32 || len(e.ids) == 0 {
			t.Fatalf("decoded an invalid entry: %+v", e)
		}
	})
}

// A front-end that must know whether its messages were spooled (the Kafka
// listener, for an idempotent producer's sequence window) gets the real
// outcome of an append that outlived the append timeout, not
// ErrSpoolTimeout; without WaitOutcome the same append answers
// ErrSpoolTimeout.
func TestAcceptWaitOutcomeAfterAppendTimeout(t *testing.T) {
	g := newFsyncGate()
	so := spool.Options{AppendTimeout: 100 * time.Millisecond, OnFsync: g.onFsync}
	ta := startAgentSpool(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: (&memSink{}).sink()}}}, so)
	msg := []Message{{Topic: "t", Value: []byte("v"), Partition: sink.NoPartition}}

	g.armed.Store(true)
	if _, err := ta.a.Accept(context.Background(), msg, AcceptOptions{}); !errors.Is(err, ErrSpoolTimeout) {
		t.Fatalf("without WaitOutcome: %v, want ErrSpoolTimeout", err)
	}
	<-g.entered
	type result struct {
		acc Accepted
		err error
	}
	done := make(chan result, 1)
	go func() {
		acc, err := ta.a.Accept(context.Background(), msg, AcceptOptions{WaitOutcome: true})
		done <- result{acc, err}
	}()
	time.Sleep(300 * time.Millisecond) // past the append timeout
	select {
	case r := <-done:
		t.Fatalf("WaitOutcome answered while the fsync was held: %+v", r)
	default:
	}
	g.open()
	r := <-done
	if r.err != nil || r.acc.First != 2 {
		t.Fatalf("WaitOutcome: %+v, want record 2 spooled", r)
	}
}
