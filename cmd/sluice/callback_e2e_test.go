package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The real binary with thousands of callback reports owed to a receiver
// that never answers: SIGTERM exits within the drain timeout plus a grace
// (a liveness bound), and the owed reports come from the callback store
// after the restart once the receiver answers.
func TestE2ECallbackBacklogSigtermAndRestart(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
	hold := make(chan struct{})
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
		var rep struct{ ID string }
		if json.NewDecoder(r.Body).Decode(&rep) == nil {
			mu.Lock()
			got[rep.ID]++
			mu.Unlock()
		}
	}))
	released := false
	t.Cleanup(func() {
		if !released {
			close(hold)
		}
		recv.Close()
	})

	dir := t.TempDir()
	out, sp := filepath.Join(dir, "out"), filepath.Join(dir, "spool")
	env := append(fileSinkEnv(sp, out), "SLUICE_DRAIN_TIMEOUT=1s", "SLUICE_CALLBACK_ATTEMPTS=100", "SLUICE_CALLBACK_BACKOFF=50ms")
	p := start(t, env...)
	var ids []string
	for i := 0; i < 20; i++ {
		var body bytes.Buffer
		for j := 0; j < 100; j++ {
			fmt.Fprintf(&body, "m%d-%d\n", i, j)
		}
		req, _ := http.NewRequest("POST", p.url+"/v1/topics/t", &body)
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Sluice-Callback", recv.URL+"/cb")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var v struct{ IDs []string }
		json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if resp.StatusCode != 202 || len(v.IDs) != 100 {
			t.Fatalf("push: %d", resp.StatusCode)
		}
		ids = append(ids, v.IDs...)
	}
	waitRecords(t, out, len(ids))
	time.Sleep(300 * time.Millisecond) // reports copied, requests held by the receiver
	sigAt := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		p.exited <- err
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, p.logs())
		}
		t.Logf("exited %v after SIGTERM", time.Since(sigAt).Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit within 30 s of SIGTERM with a callback backlog\n%s", p.logs())
	}

	close(hold)
	released = true
	p = start(t, env...)
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := 0
		for _, id := range ids {
			if got[id] > 0 {
				n++
			}
		}
		mu.Unlock()
		if n == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d reports after the restart\n%s", n, len(ids), p.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
}
