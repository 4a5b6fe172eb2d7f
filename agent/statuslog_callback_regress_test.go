package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// A report owed for a message delivered ahead of a stuck topic, not yet
// sent when the agent stops, is sent after the restart with status
// delivered (resolvedAhead reads the reloaded set), while the stuck
// message's report still waits; the ahead message is not sent again.
func TestCallbackOfAnAheadDeliveryAfterARestart(t *testing.T) {
	cbs := newCBServer(t)
	cbs.fail = 1 << 30 // no report gets through before the restart (one attempt: the next is 10 s away)
	var sent atomic.Int64
	s := funcSink{write: func(ctx context.Context, msgs []sink.Message) error {
		if msgs[0].Topic == "stuck" {
			return errTransient
		}
		sent.Add(int64(len(msgs)))
		return nil
	}}
	dir := t.TempDir()
	opts := Options{CallbackBackoff: 10 * time.Second, Sinks: []SinkSpec{{Name: "s", Sink: s}}}
	ta := startAgent(t, dir, opts)
	hdr := map[string]string{"Sluice-Callback": cbs.srv.URL + "/cb"}
	stuck := do(t, "POST", ta.url+"/v1/topics/stuck", "", []byte("s"), hdr).ids[0]
	waitFor(t, "stuck", func() bool { return ta.a.fwds[0].cursor.Acked() < mustSeq(t, stuck) })
	ahead := do(t, "POST", ta.url+"/v1/topics/ok", "", []byte("a"), hdr).ids[0]
	waitFor(t, "ahead delivery", func() bool { return getStatus(t, ta, ahead).Status == "delivered" })
	time.Sleep(2 * aheadLogInterval)
	waitFor(t, "a failed attempt", func() bool { cbs.mu.Lock(); defer cbs.mu.Unlock(); return cbs.fail < 1<<30 })
	ta.stop(t)

	opts.CallbackBackoff = 5 * time.Millisecond
	cbs.mu.Lock()
	cbs.fail = 0
	cbs.mu.Unlock()
	ta = startAgent(t, dir, opts)
	waitFor(t, "the report of the ahead delivery", func() bool { return cbs.reported(ahead) })
	if r := cbs.byID()[ahead]; r.Status != "delivered" || r.Sinks["s"].Status != "delivered" {
		t.Fatalf("report %+v", r)
	}
	time.Sleep(200 * time.Millisecond)
	if cbs.reported(stuck) {
		t.Fatalf("stuck message reported: %+v", cbs.byID()[stuck])
	}
	if n := sent.Load(); n != 1 {
		t.Fatalf("sink got %d messages, want 1", n)
	}
}

// Deliveries ahead of a stuck lane (the ahead log's timer
// flushes under f.mu), a backlog cap dropping what is being sent
// (after-drop log, written at once under f.mu), status reads and callback
// dispatch (f.mu and the spool's lock, one after the other), then a stop
// in the middle of it all: nothing deadlocks, and -race stays quiet.
func TestStatusLogsLockOrderUnderLoadAndStop(t *testing.T) {
	for round := range 3 {
		var slow atomic.Bool
		s := funcSink{write: func(ctx context.Context, msgs []sink.Message) error {
			if msgs[0].Topic == "stuck" {
				return errTransient
			}
			if slow.Load() {
				time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
			}
			return nil
		}}
		slow.Store(round%2 == 0)
		cbs := newCBServer(t)
		ta := startAgent(t, t.TempDir(), Options{CallbackBackoff: 5 * time.Millisecond, Sinks: []SinkSpec{{
			Name: "s", Sink: s, MaxBacklogBytes: 16 << 10, BacklogPolicy: "drop_oldest", BatchMessages: 8,
		}}})
		hdr := map[string]string{"Sluice-Callback": cbs.srv.URL + "/cb"}
		do(t, "POST", ta.url+"/v1/topics/stuck", "", []byte("s"), nil)
		var mu sync.Mutex
		var ids []string
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					var h map[string]string
					if i%4 == 0 {
						h = hdr
					}
					if id := pushQuietly(ta.url+fmt.Sprintf("/v1/topics/t%d", (w+i)%5), h); id != "" {
						mu.Lock()
						ids = append(ids, id)
						mu.Unlock()
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				var id string
				if len(ids) > 0 {
					id = ids[rand.IntN(len(ids))]
				}
				mu.Unlock()
				if id != "" {
					if resp, err := http.Get(ta.url + "/v1/messages/" + id); err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}
			}
		}()
		time.Sleep(400 * time.Millisecond)
		f := ta.a.fwds[0]
		f.mu.Lock()
		nAhead, nAfter := len(f.ahead.m), len(f.afterDrop.m)
		f.mu.Unlock()
		t.Logf("round %d: %d ahead, %d delivered after drop, %d dropped", round, nAhead, nAfter, f.cursor.DroppedTotal())
		if nAhead == 0 {
			t.Fatal("setup: no delivery ahead of the cursor")
		}
		done := make(chan struct{})
		go func() { ta.stop(t); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("stop hung:\n%s", buf[:runtime.Stack(buf, true)])
		}
		close(stop)
		wg.Wait()
	}
}

// pushQuietly pushes without failing the test (the agent may be stopping).
func pushQuietly(url string, hdr map[string]string) string {
	req, _ := http.NewRequest("POST", url, bytes.NewReader(bytes.Repeat([]byte("x"), 300)))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var v struct {
		IDs []string `json:"ids"`
	}
	if resp.StatusCode != 202 || json.NewDecoder(resp.Body).Decode(&v) != nil || len(v.IDs) == 0 {
		return ""
	}
	return v.IDs[0]
}

// Guarantee 5 under load: every message that read delivered before a
// graceful stop (deliveries ahead of a stuck lane, deliveries after a
// drop, a backlog cap dropping all along) still reads delivered after the
// restart, when nothing more gets through and the cap keeps dropping.
func TestNoDeliveredFlipsAcrossARestartUnderLoad(t *testing.T) {
	var slow atomic.Bool
	slow.Store(true)
	s := funcSink{write: func(ctx context.Context, msgs []sink.Message) error {
		if msgs[0].Topic == "stuck" {
			return errTransient
		}
		if slow.Load() {
			time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
		}
		return nil
	}}
	dir := t.TempDir()
	spec := SinkSpec{Name: "s", Sink: s, MaxBacklogBytes: 16 << 10, BacklogPolicy: "drop_oldest", BatchMessages: 8}
	ta := startAgent(t, dir, Options{Sinks: []SinkSpec{spec}})
	do(t, "POST", ta.url+"/v1/topics/stuck", "", []byte("s"), nil)
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	deadline := time.Now().Add(600 * time.Millisecond)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				if id := pushQuietly(ta.url+fmt.Sprintf("/v1/topics/t%d", (w+i)%5), nil); id != "" {
					mu.Lock()
					ids = append(ids, id)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	time.Sleep(300 * time.Millisecond) // batches in flight finish
	before := map[string]string{}
	for _, id := range ids {
		before[id] = getStatus(t, ta, id).Status
	}
	ta.stop(t)

	spec.Sink = funcSink{write: func(ctx context.Context, msgs []sink.Message) error { return errTransient }}
	ta = startAgent(t, dir, Options{Sinks: []SinkSpec{spec}})
	time.Sleep(300 * time.Millisecond) // the cap's policy runs
	var flips []string
	nDelivered := 0
	for _, id := range ids {
		st := getStatus(t, ta, id).Status
		if before[id] != "delivered" {
			if st == "delivered" { // nothing got through since the restart
				flips = append(flips, id+": "+before[id]+" -> delivered")
			}
			continue
		}
		nDelivered++
		if st != "delivered" {
			flips = append(flips, id+": delivered -> "+st)
		}
	}
	t.Logf("%d messages, %d delivered before the restart", len(ids), nDelivered)
	if len(flips) > 0 {
		t.Fatalf("%d delivered before a graceful restart, not after: %v", len(flips), flips[:min(len(flips), 10)])
	}
}
