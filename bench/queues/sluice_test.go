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
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

var (
	buildOnce sync.Once
	sluiceBin string
	buildErr  error
)

// sluiceBinary builds the agent once per run (no race detector).
func sluiceBinary(b *testing.B) string {
	if bin := os.Getenv("SLUICE_BENCH_BIN"); bin != "" { // a binary built elsewhere, e.g. for an A/B comparison
		return bin
	}
	buildOnce.Do(func() {
		dir, err := osMkdirTemp()
		if err != nil {
			buildErr = err
			return
		}
		sluiceBin = filepath.Join(dir, "sluice")
		// SLUICE_BENCH_TAGS=pprof builds the profiling endpoints in
		// (SLUICE_BENCH_PPROF then names a file for a CPU profile).
		cmd := exec.Command("go", "build", "-tags", os.Getenv("SLUICE_BENCH_TAGS"), "-o", sluiceBin, "./cmd/sluice")
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
	pprofAddr := fmt.Sprintf("127.0.0.1:%d", freePort(b))
	cmd.Env = append(cmd.Env, "PPROF_LISTEN="+pprofAddr)
	// SLUICE_BENCH_ENV: more of the agent's environment, space-separated
	// NAME=value pairs (e.g. GOMAXPROCS=4).
	cmd.Env = append(cmd.Env, strings.Fields(os.Getenv("SLUICE_BENCH_ENV"))...)
	startServer(b, addr, cmd)
	if out := os.Getenv("SLUICE_BENCH_PPROF"); out != "" {
		profile(b, pprofAddr, out)
	}
	var pushT, pullT, ackT opTimes
	defer func() {
		b.Logf("client-side latency: push %s, pull %s, ack %s", pushT.summary(), pullT.summary(), ackT.summary())
		logStats(b, fmt.Sprintf("127.0.0.1:%d", admin))
	}()
	post := netHTTPPost("http://" + addr)
	if os.Getenv("SLUICE_BENCH_CLIENT") == "fasthttp" {
		post = fastHTTPPost(addr)
	}
	run(b, system{
		publish: func(ctx context.Context, _ int, v []byte) error {
			defer pushT.since(time.Now())
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
				t0 := time.Now()
				if err := post(ctx, "/v1/queues/jobs/pull", "application/json", pull, &r); err != nil {
					return err
				}
				pullT.since(t0)
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
				t0 = time.Now()
				if err := post(ctx, "/v1/queues/jobs/ack", "application/json", body, nil); err != nil {
					return err
				}
				ackT.since(t0)
			}
			return nil
		},
	})
}

// poster sends one POST and decodes a 2xx answer's JSON into out (nil:
// discard it); any other status is an error.
type poster func(ctx context.Context, path, ctype string, body []byte, out any) error

// netHTTPPost posts with the standard library's client: what most Go
// programs use.
func netHTTPPost(url string) poster {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: producers + consumers}}
	return func(ctx context.Context, path, ctype string, body []byte, out any) error {
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
}

// fastHTTPPost posts with fasthttp's client (SLUICE_BENCH_CLIENT=fasthttp):
// a leaner HTTP client, as go-redis is for Redis, so that less of the two
// shared cores goes to the benchmark's own side. fasthttp takes no
// context: the callers check theirs between calls, and a pull waits at
// most its 1 s.
func fastHTTPPost(addr string) poster {
	hc := &fasthttp.HostClient{Addr: addr, MaxConns: producers + consumers}
	return func(ctx context.Context, path, ctype string, body []byte, out any) error {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + addr + path)
		req.Header.SetMethod("POST")
		req.Header.SetContentType(ctype)
		req.SetBodyRaw(body)
		if err := hc.Do(req, resp); err != nil {
			return err
		}
		if c := resp.StatusCode(); c/100 != 2 {
			return fmt.Errorf("%s: %d %s", path, c, resp.Body())
		}
		if out == nil {
			return nil
		}
		return json.Unmarshal(resp.Body(), out)
	}
}

// opTimes collects the client-side durations of one kind of call.
type opTimes struct {
	mu sync.Mutex
	d  []time.Duration
}

func (o *opTimes) since(t0 time.Time) {
	d := time.Since(t0)
	o.mu.Lock()
	o.d = append(o.d, d)
	o.mu.Unlock()
}

func (o *opTimes) summary() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.d) == 0 {
		return "-"
	}
	slices.Sort(o.d)
	return fmt.Sprintf("n=%d p50=%s p99=%s", len(o.d), o.d[len(o.d)/2].Round(time.Microsecond), o.d[len(o.d)*99/100].Round(time.Microsecond))
}

// logStats logs the agent's spool and queue-log commits and fsyncs: how
// many records each group commit took, and fsyncs per message.
func logStats(b *testing.B, admin string) {
	resp, err := http.Get("http://" + admin + "/v1/stats")
	if err != nil {
		b.Logf("stats: %v", err)
		return
	}
	defer resp.Body.Close()
	type sp struct {
		Appended, Commits, Fsyncs uint64
		Gathers, GatherTimeouts   uint64
		FsyncTime                 time.Duration
	}
	var st struct {
		Spool  sp `json:"spool"`
		Queues []struct {
			Log sp `json:"log"`
		} `json:"queues"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || len(st.Queues) == 0 {
		b.Logf("stats: %v", err)
		return
	}
	f := func(what string, s sp) {
		if s.Commits == 0 || s.Fsyncs == 0 {
			return
		}
		b.Logf("%s: %d records, %d commits (%.2f records each; %d waited for writers, %d of them gave up), %d fsyncs (mean %s)",
			what, s.Appended, s.Commits, float64(s.Appended)/float64(s.Commits), s.Gathers, s.GatherTimeouts,
			s.Fsyncs, (s.FsyncTime / time.Duration(s.Fsyncs)).Round(time.Microsecond))
	}
	f("spool", st.Spool)
	f("queue log", st.Queues[0].Log)
}

// profile fetches a CPU profile of the agent for the next few seconds
// into file out (in the background).
func profile(b *testing.B, addr, out string) {
	go func() {
		resp, err := http.Get("http://" + addr + "/debug/pprof/profile?seconds=3")
		if err != nil {
			b.Logf("pprof: %v", err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(out)
		if err != nil {
			return
		}
		defer f.Close()
		io.Copy(f, resp.Body)
	}()
}
