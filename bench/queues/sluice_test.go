package queues

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	sluiceBin string
	buildErr  error
)

// sluiceBinary builds the agent once per run (no race detector).
func sluiceBinary(b *testing.B) string {
	buildOnce.Do(func() {
		dir, err := osMkdirTemp()
		if err != nil {
			buildErr = err
			return
		}
		sluiceBin = filepath.Join(dir, "sluice")
		cmd := exec.Command("go", "build", "-o", sluiceBin, "./cmd/sluice")
		_, here, _, _ := runtime.Caller(0)
		cmd.Dir = filepath.Join(filepath.Dir(here), "..", "..") // the repository root: sluice's own module
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	return sluiceBin
}

func BenchmarkSluice(b *testing.B) {
	dir := b.TempDir()
	logFS(b, dir)
	port, admin := freePort(b), freePort(b)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(sluiceBinary(b), "run")
	cmd.Env = env("SLUICE_LISTEN", addr, "SLUICE_ADMIN_LISTEN", fmt.Sprintf("127.0.0.1:%d", admin),
		"SLUICE_SPOOL_DIR", filepath.Join(dir, "spool"), "SLUICE_SPOOL_SYNC", cmp.Or(os.Getenv("SLUICE_BENCH_SYNC"), "always"), "SLUICE_SPOOL_MAX_BYTES", "4GiB",
		"SLUICE_SINKS", "jobs", "SLUICE_JOBS_TYPE", "queue", "SLUICE_LOG_LEVEL", "warn")
	startServer(b, addr, cmd)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: producers + consumers}}
	url := "http://" + addr
	post := func(ctx context.Context, path, ctype string, body []byte, out any) error {
		req, _ := http.NewRequestWithContext(ctx, "POST", url+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			msg, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("%s: %d %s", path, resp.StatusCode, msg)
		}
		if out == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			return err
		}
		return json.NewDecoder(resp.Body).Decode(out)
	}
	run(b, system{
		publish: func(ctx context.Context, _ int, v []byte) error {
			return post(ctx, "/v1/topics/bench", "application/octet-stream", v, nil)
		},
		consume: func(ctx context.Context, _ int, got func([]byte)) error {
			pull := []byte(fmt.Sprintf(`{"max":%d,"wait":"1s","visibility":"1m"}`, batch))
			for ctx.Err() == nil {
				var r struct {
					Messages []struct {
						ValueB64 string `json:"value_b64"`
						Receipt  string `json:"receipt"`
					} `json:"messages"`
				}
				if err := post(ctx, "/v1/queues/jobs/pull", "application/json", pull, &r); err != nil {
					return err
				}
				if len(r.Messages) == 0 {
					continue
				}
				rs := make([]string, len(r.Messages))
				for i, m := range r.Messages {
					v, err := base64.StdEncoding.DecodeString(m.ValueB64)
					if err != nil {
						return err
					}
					got(v)
					rs[i] = m.Receipt
				}
				body, _ := json.Marshal(map[string]any{"receipts": rs})
				if err := post(ctx, "/v1/queues/jobs/ack", "application/json", body, nil); err != nil {
					return err
				}
			}
			return nil
		},
	})
}
