package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// downURL is a loopback URL nothing listens on.
func downURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String() + "/cb"
	ln.Close()
	return u
}

func ndjson(prefix string, n, size int) []byte {
	var b strings.Builder
	pad := strings.Repeat("x", max(size-len(prefix)-8, 0))
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "%s%06d%s\n", prefix, i, pad)
	}
	return []byte(b.String())
}

// Issue 13 item 2: a receiver that is down must not stop ingest. The
// spool holds 1 MiB; 4 MiB of messages asking for a callback to a dead
// receiver go through it while the sink is healthy. Before the fix the
// callbacks cursor pinned the spool until each report was given up, and
// pushes got 503 spool_full.
func TestCallbackDeadReceiverDoesNotFillSpool(t *testing.T) {
	mem := &memSink{}
	ta := startAgentSpool(t, t.TempDir(),
		Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink(), RetryMin: time.Millisecond, RetryMax: 20 * time.Millisecond}}},
		spool.Options{MaxBytes: 1 << 20, SegmentBytes: 64 << 10, TruncateSegments: 1})
	dead := map[string]string{"Sluice-Callback": downURL(t), "Content-Type": "application/x-ndjson"}
	plain := map[string]string{"Content-Type": "application/x-ndjson"}
	for i := 0; i < 64; i++ {
		// 32 KiB with callbacks, then 32 KiB of healthy pushes without.
		if r := do(t, "POST", ta.url+"/v1/topics/t", "", ndjson("cb", 32, 1024), dead); r.status != 202 {
			t.Fatalf("push %d with a callback to a dead receiver: %d %s", i, r.status, r.code)
		}
		if r := do(t, "POST", ta.url+"/v1/topics/t", "", ndjson("ok", 32, 1024), plain); r.status != 202 {
			t.Fatalf("healthy push %d: %d %s", i, r.status, r.code)
		}
		// The sink keeps up: wait for it so only the callbacks could hold the spool.
		want := (i + 1) * 64
		waitFor(t, "the sink", func() bool { return len(mem.messages()) >= want })
	}
}

// Issue 13 item 2 at volume: with thousands of reports owed to a slow
// receiver, the work per completed report stays constant. Counted in
// status evaluations, not time. Before the fix every event rescanned every
// pending report (thousands of evaluations per completion).
func TestCallbackDispatchCostFlat(t *testing.T) {
	var got atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		got.Add(1)
	}))
	t.Cleanup(slow.Close)
	mem := &memSink{}
	ta := startAgent(t, t.TempDir(), Options{CallbackBackoff: 5 * time.Millisecond, Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	hdr := map[string]string{"Sluice-Callback": slow.URL + "/cb", "Content-Type": "application/x-ndjson"}
	const n = 3000
	for i := 0; i < n/100; i++ {
		if r := do(t, "POST", ta.url+"/v1/topics/t", "", ndjson("m", 100, 32), hdr); r.status != 202 {
			t.Fatalf("push: %d %s", r.status, r.code)
		}
	}
	waitFor(t, "the sink", func() bool { return len(mem.messages()) == n })
	// Measure while most reports are still owed.
	c0, s0 := got.Load(), ta.a.statusCalls.Load()
	waitFor(t, "200 reports", func() bool { return got.Load() >= c0+200 })
	c1, s1 := got.Load(), ta.a.statusCalls.Load()
	if left := n - c1; left < 1000 {
		t.Logf("only %d reports were still owed during the measurement", left)
	}
	per := float64(s1-s0) / float64(c1-c0)
	t.Logf("status evaluations per completed report with ~%d owed: %.2f", n-c0, per)
	if per > 3 {
		t.Fatalf("dispatch evaluates %.1f statuses per completed report: it grows with the owed reports", per)
	}
}

// Issue 13 item 3: SIGTERM with a callback backlog exits. Thousands of
// owed reports, half to a quick receiver (whose completions the old
// dispatch loop, busy rescanning, could not take: its done channel filled
// and its workers blocked), half to one that never answers; cancel; Run
// returns within the drain timeout plus a grace. The bound is a liveness
// bound, not a performance claim.
func TestCallbackBacklogDoesNotHangShutdown(t *testing.T) {
	release := make(chan struct{})
	var hungCalls atomic.Int64
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hungCalls.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	fast := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { time.Sleep(time.Millisecond) }))
	t.Cleanup(func() { close(release); hung.Close(); fast.Close() })
	mem := &memSink{}
	ta := startAgent(t, t.TempDir(), Options{CallbackBackoff: 5 * time.Millisecond, DrainTimeout: 500 * time.Millisecond,
		Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	for i, u := range []string{fast.URL, hung.URL} {
		hdr := map[string]string{"Sluice-Callback": u + "/cb", "Content-Type": "application/x-ndjson"}
		for j := 0; j < 100; j++ {
			if r := do(t, "POST", ta.url+"/v1/topics/t", "", ndjson(fmt.Sprint(i), 100, 16), hdr); r.status != 202 {
				t.Fatalf("push: %d %s", r.status, r.code)
			}
		}
	}
	waitFor(t, "the sink", func() bool { return len(mem.messages()) == 20000 })
	waitFor(t, "the hung receiver to hold requests", func() bool { return hungCalls.Load() > 0 })
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	ta.cancel()
	select {
	case err := <-ta.done:
		ta.done <- err
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		t.Logf("Run returned %v after cancel", time.Since(start).Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30 s of cancel with a callback backlog")
	}
}

// Issue 13 item 8: a callback can never call sluice's own listeners. At
// push time every spelling of the ingest and admin addresses answers 400
// callback_not_allowed; at dial time a name that resolves to the agent's
// port is refused, so the drain endpoint is never called.
func TestCallbackToOwnListenerRefused(t *testing.T) {
	mem := &memSink{}
	ta := startAgent(t, t.TempDir(), Options{CallbackBackoff: 5 * time.Millisecond, CallbackAllow: []string{"*.hooks.test"},
		Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	in, ad := ta.a.Addrs()
	_, inPort, _ := net.SplitHostPort(in)
	_, adPort, _ := net.SplitHostPort(ad)
	for _, u := range []string{
		"http://" + in + "/v1/control/drain",
		"http://localhost:" + inPort + "/v1/control/deadletters/purge",
		"http://[::1]:" + inPort + "/v1/control/drain",
		"http://127.0.0.1:" + adPort + "/metrics",
		"http://localhost.:" + inPort + "/v1/control/drain",
	} {
		r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("x"), map[string]string{"Sluice-Callback": u})
		if r.status != 400 || r.code != "callback_not_allowed" {
			t.Errorf("callback %s: %d %s, want 400 callback_not_allowed", u, r.status, r.code)
		}
	}
	// A name the push-time check cannot see through.
	var mu sync.Mutex
	resolved := 0
	ta.a.guard.resolve = func(_ context.Context, host string) ([]net.IP, error) {
		mu.Lock()
		resolved++
		mu.Unlock()
		return []net.IP{net.ParseIP("127.0.0.1")}, nil
	}
	r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("x"),
		map[string]string{"Sluice-Callback": "http://self.hooks.test:" + inPort + "/v1/control/drain"})
	if r.status != 202 {
		t.Fatalf("push: %d %s", r.status, r.code)
	}
	waitFor(t, "the dial attempt", func() bool { mu.Lock(); defer mu.Unlock(); return resolved > 0 })
	time.Sleep(300 * time.Millisecond)
	if ta.a.draining.Load() {
		t.Fatal("a callback reached the control endpoint: the agent is draining")
	}
	if r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("still open"), nil); r.status != 202 {
		t.Fatalf("push after the callback: %d %s", r.status, r.code)
	}
}
