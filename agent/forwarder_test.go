package agent

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// countSink counts what it delivers per topic, failing while fail says so.
type countSink struct {
	mu    sync.Mutex
	n     map[string]int
	vals  map[string][]string
	keep  bool // remember values
	fails func(topic string) bool
}

func (c *countSink) sink() sink.Sink {
	return funcSink{write: func(_ context.Context, msgs []sink.Message) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.n == nil {
			c.n, c.vals = map[string]int{}, map[string][]string{}
		}
		for _, m := range msgs {
			if c.fails != nil && c.fails(m.Topic) {
				return sink.WithReason("unknown_topic", errTransient)
			}
		}
		for _, m := range msgs {
			c.n[m.Topic]++
			if c.keep {
				c.vals[m.Topic] = append(c.vals[m.Topic], string(m.Value))
			}
		}
		return nil
	}}
}

func (c *countSink) count(topic string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[topic]
}

func (c *countSink) setFails(f func(string) bool) {
	c.mu.Lock()
	c.fails = f
	c.mu.Unlock()
}

// Scenario 1: an optional sink that is down, with a 1 MiB backlog cap and
// drop_oldest, shares the spool with a healthy sink. Its lanes fill the
// forwarder's memory budget long before its backlog reaches the spool cap;
// the trim must go on all the same, so the healthy sink's pushes never see
// spool_full. (Before the fix the reader waited for memory and the trim,
// run by the same loop, stopped: 503 spool_full after ~64 MiB.)
func TestDeadOptionalSinkWithDropOldestNeverFillsTheSpool(t *testing.T) {
	healthy, optional := &countSink{}, &countSink{}
	optional.setFails(func(string) bool { return true })
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{
		{Name: "main", Sink: healthy.sink(), Topics: []string{"h"}},
		{Name: "opt", Sink: optional.sink(), MaxBacklogBytes: 1 << 20, BacklogPolicy: "drop_oldest", RetryMin: 50 * time.Millisecond, RetryMax: time.Second},
	}})
	line := append(bytes.Repeat([]byte("v"), 1023), '\n')
	body := bytes.Repeat(line, 1000) // ~1 MiB per request
	const requests = 96              // 1.5 × the 64 MiB spool cap
	for i := 0; i < requests; i++ {
		r := do(t, "POST", ta.url+"/v1/topics/h", "application/x-ndjson", body, nil)
		if r.status != 202 {
			t.Fatalf("push %d for the healthy sink refused: %+v (opt backlog %d bytes)", i, r, ta.a.fwds[1].cursor.BacklogBytes())
		}
		// The cap is applied every second: keep under the spool cap
		// between two trims even on a fast machine.
		if ta.a.fwds[1].cursor.BacklogBytes() > 32<<20 {
			waitFor(t, "the trim", func() bool { return ta.a.fwds[1].cursor.BacklogBytes() < 8<<20 })
		}
	}
	waitFor(t, "the healthy sink", func() bool { return healthy.count("h") == requests*1000 })
	waitFor(t, "the optional sink's cap", func() bool { return ta.a.fwds[1].cursor.BacklogBytes() <= 1<<20 })
	if ta.a.fwds[1].cursor.DroppedTotal() == 0 {
		t.Fatal("nothing counted as dropped")
	}
}

// Scenario 7: a stuck topic of tiny messages. The forwarder holds what it
// reads within its budget whatever the backlog (before the fix, 100,000
// one-byte messages counted 100 KB against the 16 MiB cap while the heap
// grew by ~40 MB); the other topic flows meanwhile; once the topic moves
// again every message arrives once, in order.
func TestStuckTopicMemoryIsBoundedAndCatchesUp(t *testing.T) {
	const n = 100000
	cs := &countSink{keep: true}
	cs.setFails(func(topic string) bool { return topic == "stuck" })
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "k", Sink: cs.sink(), RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}}})
	do(t, "POST", ta.url+"/v1/topics/stuck", "", []byte("0"), nil)
	waitFor(t, "the lane stuck", func() bool { return ta.a.fwds[0].failing.Load() })
	base := heapInUse()
	var body []byte
	for i := 1; i < n; i++ {
		body = strconv.AppendInt(body, int64(i), 10)
		body = append(body, '\n')
		if i%10000 == 0 || i == n-1 {
			if r := do(t, "POST", ta.url+"/v1/topics/stuck", "application/x-ndjson", body, nil); r.status != 202 {
				t.Fatalf("push: %+v", r)
			}
			body = body[:0]
			if r := do(t, "POST", ta.url+"/v1/topics/flows", "", []byte("f"), nil); r.status != 202 {
				t.Fatalf("push: %+v", r)
			}
		}
	}
	waitFor(t, "the other topic", func() bool { return cs.count("flows") == 10 })
	// The reader has gone past every stuck record (the flowing topic's
	// last message came after them all).
	if grew := heapInUse() - base; grew > 24<<20 {
		t.Fatalf("heap grew by %d MiB holding a stuck topic of %d tiny messages", grew>>20, n)
	}
	if h := ta.a.fwds[0].heldBytes(); h > ta.a.fwds[0].budget {
		t.Fatalf("forwarder holds %d bytes, budget %d", h, ta.a.fwds[0].budget)
	}
	cs.setFails(nil)
	// 100,000 messages catch up in 1-5 s under -race: wait while they arrive.
	f := ta.a.fwds[0]
	waitCount(t, "stuck topic delivered", func() int64 { return int64(cs.count("stuck")) }, n, func() string { return forwarderState(f) })
	waitFor(t, "the cursor", func() bool { return ta.a.fwds[0].cursor.BacklogBytes() == 0 })
	cs.mu.Lock()
	got := cs.vals["stuck"]
	cs.mu.Unlock()
	if len(got) != n {
		t.Fatalf("stuck topic: %d deliveries of %d messages", len(got), n)
	}
	for i, v := range got {
		if v != strconv.Itoa(i) {
			t.Fatalf("delivery %d is %q: order or exactly-once broken", i, v)
		}
	}
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// Scenario 6: a chained message (pushed with its own id) that is
// dead-lettered reports failed under that id, and replay sends it under
// that id again. (Before the fix the dead letter was filed under the
// local id: status said delivered, replay changed the id.)
func TestChainedMessageKeepsItsIdentity(t *testing.T) {
	mem := &memSink{}
	var mu sync.Mutex
	broken := true
	mem.setFail(func([]sink.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if broken {
			return sink.Permanent(sink.WithReason("invalid_record", errors.New("schema mismatch")))
		}
		return nil
	})
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	r := do(t, "POST", ta.url+"/v1/messages", "application/json", []byte(`{"messages":[{"topic":"t","value":"v","id":"upstream-7"}]}`), nil)
	if r.status != 202 || len(r.ids) != 1 || r.ids[0] != "upstream-7" {
		t.Fatalf("push: %+v", r)
	}
	waitFor(t, "the dead letter", func() bool { return getStatus(t, ta, "upstream-7").Status != "pending" })
	if st := getStatus(t, ta, "upstream-7"); st.Status != "failed" || st.Sinks["mem"].Reason != "invalid_record" {
		t.Fatalf("status of the dead-lettered chained message: %+v", st)
	}
	mu.Lock()
	broken = false
	mu.Unlock()
	if r := do(t, "POST", ta.url+"/v1/control/deadletters/replay", "", nil, ta.ctl()); r.status != 200 {
		t.Fatalf("replay: %+v", r)
	}
	waitFor(t, "the replay", func() bool { return len(mem.messages()) == 1 })
	if id := mem.messages()[0].ID; id != "upstream-7" {
		t.Fatalf("replayed under id %q", id)
	}
	waitFor(t, "delivered", func() bool { return getStatus(t, ta, "upstream-7").Status == "delivered" })
}

// Decision (e): a message a backlog cap drops while its batch is being
// written may still arrive; its status then says delivered, and it is
// counted.
func TestDeliveredAfterDropSaysDelivered(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	started := make(chan struct{})
	var mu sync.Mutex
	var got []string
	s := funcSink{write: func(ctx context.Context, msgs []sink.Message) error {
		if msgs[0].Topic == "slow" {
			once.Do(func() { close(started) })
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		mu.Lock()
		for _, m := range msgs {
			got = append(got, m.ID)
		}
		mu.Unlock()
		return nil
	}}
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "s", Sink: s, MaxBacklogBytes: 4096, BacklogPolicy: "drop_oldest"}}})
	first := do(t, "POST", ta.url+"/v1/topics/slow", "", []byte("first"), nil).ids[0]
	<-started
	for i := 0; i < 20; i++ {
		do(t, "POST", ta.url+"/v1/topics/other", "", bytes.Repeat([]byte("x"), 1000), nil)
	}
	_, sid, _ := parseID(first)
	waitFor(t, "the drop", func() bool { return ta.a.fwds[0].cursor.Dropped(sid.Seq) })
	close(release)
	waitFor(t, "the delivery", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0 && got[0] == first
	})
	waitFor(t, "the status", func() bool { return getStatus(t, ta, first).Status != "pending" })
	if st := getStatus(t, ta, first); st.Status != "delivered" {
		t.Fatalf("delivered after its drop, status %+v", st)
	}
	if n := ta.a.fwds[0].m.deliveredAfterDrop.Get(); n < 1 {
		t.Fatalf("delivered_after_drop counted %d", n)
	}
}

// Decision (f): the cursor of a sink removed from the configuration holds
// its backlog (kept, shown as an orphan) unless OrphanCursors is "remove".
func TestOrphanCursorPolicy(t *testing.T) {
	dir := t.TempDir()
	down := &memSink{}
	down.setFail(func([]sink.Message) error { return errTransient })
	ta := startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "a", Sink: (&memSink{}).sink()}, {Name: "b", Sink: down.sink()}}})
	do(t, "POST", ta.url+"/v1/topics/t", "", []byte("x"), nil)
	ta.stop(t)
	orphans := func(ta *testAgent) []string {
		var names []string
		for _, c := range ta.sp.Cursors() {
			if !c.InUse {
				names = append(names, c.Name)
			}
		}
		return names
	}
	ta = startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "a", Sink: (&memSink{}).sink()}}})
	if o := orphans(ta); len(o) != 1 || o[0] != "b" || ta.a.stats().Orphans[0] != "b" {
		t.Fatalf("kept orphans: %v", o)
	}
	ta.stop(t)
	ta = startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "a", Sink: (&memSink{}).sink()}}, OrphanCursors: "remove"})
	if o := orphans(ta); len(o) != 0 {
		t.Fatalf("orphans after remove: %v", o)
	}
}
