package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pushKeyed pushes body to topic with an Idempotency-Key.
func pushKeyed(url, topic, key string, body []byte) (code int, ids []string, replay bool, err error) {
	req, _ := http.NewRequest("POST", url+"/v1/topics/"+topic, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, false, err
	}
	defer resp.Body.Close()
	var v struct{ IDs []string }
	json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, v.IDs, resp.Header.Get("Sluice-Idempotent-Replay") == "true", nil
}

// TestE2EIdempotencyKill9: keyed and plain pushes until the spool front
// has been truncated, then SIGKILL. After the restart every acknowledged
// key returns its original ids and spools nothing: the keys were in the
// durable index, or still in the spool past the index copier's cursor.
func TestE2EIdempotencyKill9(t *testing.T) {
	dir := t.TempDir()
	out, sp := filepath.Join(dir, "out"), filepath.Join(dir, "spool")
	env := append(fileSinkEnv(sp, out), "SLUICE_SPOOL_SEGMENT_BYTES=64KiB")
	p := start(t, env...)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[string][]string{} // key -> ids
	filler := bytes.Repeat([]byte("f"), 2000)
	for w := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, _, err := push(p.url, "plain", filler, ""); err != nil {
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("w%d-%d", w, i)
				code, ids, _, err := pushKeyed(p.url, "keyed", key, []byte(strings.Repeat("k\n", 1+i%3)))
				if err != nil {
					return // killed mid-request: outcome unknown
				}
				if code == 202 {
					mu.Lock()
					acked[key] = ids
					mu.Unlock()
				}
			}
		}()
	}
	first := filepath.Join(sp, "wal", "00000000000000000001")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(first); os.IsNotExist(err) {
			break // the front was truncated
		}
		if time.Now().After(deadline) {
			t.Fatal("spool front never truncated")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // keys in flight while killed
	p.cmd.Process.Kill()
	p.wait(t)
	cancel()
	wg.Wait()

	p = start(t, env...)
	for key, ids := range acked {
		n := len(ids)
		code, got, replay, err := pushKeyed(p.url, "keyed", key, []byte(strings.Repeat("k\n", n)))
		if err != nil || code != 202 || !replay || strings.Join(got, ",") != strings.Join(ids, ",") {
			t.Fatalf("key %s after kill -9: %d %v replay=%v %v, want %v", key, code, got, replay, err, ids)
		}
	}
	t.Logf("kill -9 after truncation: %d acknowledged keys, every retry replayed", len(acked))
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}
