package agent

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// receiver is a callback receiver that records reports by message id and
// can answer 500 or hold requests.
type receiver struct {
	srv     *httptest.Server
	failing atomic.Bool
	hold    chan struct{} // when set, requests wait for it to close
	mu      sync.Mutex
	got     map[string]int
}

func newReceiver(t *testing.T, hold bool) *receiver {
	rc := &receiver{got: map[string]int{}}
	if hold {
		rc.hold = make(chan struct{})
	}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rc.hold != nil {
			select {
			case <-rc.hold:
			case <-r.Context().Done():
				return
			}
		}
		if rc.failing.Load() {
			w.WriteHeader(500)
			return
		}
		var rep Report
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
			w.WriteHeader(400)
			return
		}
		rc.mu.Lock()
		rc.got[rep.ID]++
		rc.mu.Unlock()
	}))
	t.Cleanup(func() {
		if rc.hold != nil {
			close(rc.hold)
		}
		rc.srv.Close()
	})
	return rc
}

func (rc *receiver) count(ids []string) (distinct, total int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, id := range ids {
		if n := rc.got[id]; n > 0 {
			distinct++
			total += n
		}
	}
	return distinct, total
}

func pushN(t *testing.T, ta *testAgent, url string, n int) []string {
	t.Helper()
	hdr := map[string]string{"Sluice-Callback": url, "Content-Type": "application/x-ndjson"}
	r := do(t, "POST", ta.url+"/v1/topics/t", "", ndjson("m", n, 16), hdr)
	if r.status != 202 || len(r.ids) != n {
		t.Fatalf("push: %d %s (%d ids)", r.status, r.code, len(r.ids))
	}
	return r.ids
}

// Owed reports survive a restart from the store (the main cursor had
// already passed them) and are delivered; reports sent before the restart
// are not sent again (tombstones); the store is compacted to nothing once
// every report is done.
func TestCallbackOwedReportsSurviveRestart(t *testing.T) {
	rc := newReceiver(t, false)
	mem := &memSink{}
	dir := t.TempDir()
	opts := Options{CallbackBackoff: 5 * time.Millisecond, CallbackAttempts: 1000, Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}}
	ta := startAgent(t, dir, opts)
	early := pushN(t, ta, rc.srv.URL+"/cb", 20)
	waitFor(t, "the early reports", func() bool { d, _ := rc.count(early); return d == len(early) })

	rc.failing.Store(true)
	owed := pushN(t, ta, rc.srv.URL+"/cb", 50)
	last := ta.sp.LastSeq()
	waitFor(t, "the copy and failed attempts", func() bool {
		return ta.a.cb.cursor.Acked() == last && ta.a.cb.failed.Get() >= 50
	})
	ta.stop(t)

	rc.failing.Store(false)
	ta = startAgent(t, dir, opts)
	waitFor(t, "the owed reports after the restart", func() bool { d, _ := rc.count(owed); return d == len(owed) })
	if d, total := rc.count(early); d != len(early) || total != len(early) {
		t.Fatalf("early reports: %d distinct, %d sent; want each once", d, total)
	}
	waitFor(t, "the store compacted", func() bool { return ta.a.cb.storeCur.BacklogBytes() == 0 })
}

// Past the pending cap the oldest reports of the host with the most
// pending are dropped and counted; another host's reports still come.
func TestCallbackPendingCapDropsFromBusiestHost(t *testing.T) {
	dead := newReceiver(t, true)
	ok := newReceiver(t, false)
	mem := &memSink{}
	ta := startAgent(t, t.TempDir(), Options{CallbackMaxPending: 50, CallbackBackoff: 5 * time.Millisecond,
		Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	pushN(t, ta, dead.srv.URL+"/cb", 300)
	waitFor(t, "drops", func() bool { return ta.a.cb.dropped.Get() >= 250 })
	good := pushN(t, ta, ok.srv.URL+"/cb", 20)
	waitFor(t, "the healthy host's reports", func() bool { d, _ := ok.count(good); return d == len(good) })
	if p := ta.a.cb.pending.Get(); p > 50 {
		t.Fatalf("pending %v above the cap", p)
	}
	t.Logf("dropped %d", ta.a.cb.dropped.Get())
}

// Past the store's byte cap the oldest records are evicted: owed reports
// among them are dropped and counted, the store stays within its cap, and
// new reports are still delivered.
func TestCallbackStoreByteCapDropsOldest(t *testing.T) {
	dead := newReceiver(t, true)
	ok := newReceiver(t, false)
	mem := &memSink{}
	const capBytes = 256 << 10
	ta := startAgent(t, t.TempDir(), Options{CallbackMaxBytes: capBytes, CallbackBackoff: 5 * time.Millisecond,
		Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	long := dead.srv.URL + "/cb/" + strings.Repeat("p", 1024)
	for i := 0; i < 10; i++ {
		pushN(t, ta, long, 100) // ~1.1 MiB of reports
	}
	waitFor(t, "drops", func() bool { return ta.a.cb.dropped.Get() > 0 })
	if b := ta.a.cb.storeCur.BacklogBytes(); b > capBytes {
		t.Fatalf("store backlog %d above its cap %d", b, capBytes)
	}
	good := pushN(t, ta, ok.srv.URL+"/cb", 10)
	waitFor(t, "new reports", func() bool { d, _ := ok.count(good); return d == len(good) })
	t.Logf("dropped %d of 1000", ta.a.cb.dropped.Get())
}

// The guard knows the agent's listeners: bound to all interfaces, every
// local address at that port is refused, other ports are not.
func TestCallbackGuardSelf(t *testing.T) {
	var local net.IP
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				local = n.IP
				break
			}
		}
	}
	allow := []string{}
	if local != nil {
		allow = append(allow, local.String())
	}
	g, err := newCallbackGuard(allow)
	if err != nil {
		t.Fatal(err)
	}
	g.setSelf(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7101}, &net.TCPAddr{IP: net.IPv6zero, Port: 7103}, &net.UnixAddr{Name: "/tmp/x.sock", Net: "unix"})
	cases := map[string]bool{
		"http://127.0.0.1:7101/v1/control/drain": false,
		"http://127.0.0.2:7101/v1/control/drain": false,
		"http://localhost:7101/x":                false,
		"http://[::1]:7101/x":                    false,
		"http://127.0.0.1:7103/metrics":          false,
		"http://127.0.0.1:7102/cb":               true,
		"http://localhost:8080/cb":               true,
	}
	if local != nil {
		cases["http://"+local.String()+":7103/metrics"] = false
		cases["http://"+local.String()+":9000/cb"] = true
	}
	for u, want := range cases {
		if err := g.checkURL(u); (err == nil) != want {
			t.Errorf("%s: allowed=%v, want %v (%v)", u, err == nil, want, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:7101", "localhost:7103", "[::1]:7103"} {
		if _, err := g.dial(context.Background(), "tcp", addr); err == nil || !strings.Contains(err.Error(), "own listeners") {
			t.Errorf("dial %s: %v, want refused as own listener", addr, err)
		}
	}
	if _, err := g.dial(context.Background(), "unix", "/tmp/x.sock"); err == nil {
		t.Error("dial unix: allowed")
	}
}

// Store records decode without panicking whatever their bytes, and a
// report survives its own encoding.
func FuzzCallbackStoreRecord(f *testing.F) {
	f.Add(encodeCBReport(&cbReport{id: "s-1-2", url: "http://127.0.0.1:9/cb", topic: "t", targets: []string{"a", "b"}, pushed: time.Unix(0, 42)}))
	f.Add(encodeCBTombstone([]uint64{1, 300, 1 << 40}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, ok := decodeCBReport(b, interner{}); ok {
			again, ok := decodeCBReport(encodeCBReport(r), interner{})
			if !ok || again.id != r.id || again.url != r.url || again.topic != r.topic || again.sid != r.sid ||
				!again.pushed.Equal(r.pushed) || len(again.targets) != len(r.targets) {
				t.Fatalf("report does not round-trip: %+v vs %+v", r, again)
			}
		}
		if seqs, ok := decodeCBTombstone(b); ok {
			if again, ok := decodeCBTombstone(encodeCBTombstone(seqs)); !ok || len(again) != len(seqs) {
				t.Fatalf("tombstone does not round-trip: %v", seqs)
			}
		}
	})
}
