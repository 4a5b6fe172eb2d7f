package agent

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/spool"
)

// BenchmarkIngest compares the ingest path (parse, route, encode, spool
// append with fsync, reply) with a bare fasthttp handler that only reads
// the body, at 64 concurrent requests, in one run:
//
//	go test -run x -bench Ingest -benchtime 3s -count 5 ./agent
func BenchmarkIngest(b *testing.B) {
	value := bytes.Repeat([]byte("v"), 1024)
	var ndjson []byte
	for i := 0; i < 100; i++ {
		ndjson = append(append(ndjson, value...), '\n')
	}
	for _, c := range []struct {
		name  string
		body  []byte
		ctype string
		msgs  int
	}{
		{"single-1KiB", value, "application/octet-stream", 1},
		{"ndjson-100x1KiB", ndjson, "application/x-ndjson", 100},
	} {
		// Two ceilings: a handler that only reads the body, and one that
		// also appends it to a file (one write(2) per request, no fsync).
		for _, write := range []bool{false, true} {
			name := "bare-fasthttp/"
			if write {
				name = "bare-fasthttp+write/"
			}
			b.Run(name+c.name, func(b *testing.B) {
				f, err := os.Create(filepath.Join(b.TempDir(), "out"))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				var mu sync.Mutex
				ln, _ := net.Listen("tcp", "127.0.0.1:0")
				srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
					body := ctx.PostBody()
					if write {
						mu.Lock()
						_, _ = f.Write(body)
						mu.Unlock()
					}
					ctx.SetStatusCode(202)
					ctx.SetBodyString(`{"ids":["x"]}`)
				}}
				go srv.Serve(ln)
				defer srv.Shutdown()
				load(b, "http://"+ln.Addr().String()+"/v1/topics/bench", c.body, c.ctype, c.msgs)
			})
		}
		for _, policy := range []spool.SyncPolicy{spool.SyncAlways, spool.SyncInterval} {
			b.Run(fmt.Sprintf("sluice-sync=%s/%s", policy, c.name), func(b *testing.B) {
				dir := b.TempDir()
				sp, _ := spool.Open(filepath.Join(dir, "s"), spool.Options{Sync: policy, MaxBytes: 64 << 30, Logger: quiet()})
				dl, _ := spool.Open(filepath.Join(dir, "d"), spool.Options{Logger: quiet()})
				var delivered atomic.Int64
				discard := funcSink{write: func(_ context.Context, msgs []sink.Message) error {
					delivered.Add(int64(len(msgs)))
					return nil
				}}
				a, err := New(Options{Spool: sp, DeadLetter: dl, Listen: "127.0.0.1:0", AdminListen: "-", Logger: quiet(),
					Sinks: []SinkSpec{{Name: "discard", Sink: discard}}})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { a.Run(ctx); close(done) }()
				<-a.Ready()
				in, _ := a.Addrs()
				load(b, "http://"+in+"/v1/topics/bench", c.body, c.ctype, c.msgs)
				st := sp.Stats()
				b.ReportMetric(st.MeanCommitSize, "records/commit")
				cancel()
				<-done
			})
		}
	}
}

// load sends b.N requests over 64 connections and reports messages/s.
func load(b *testing.B, url string, body []byte, ctype string, msgs int) {
	const conns = 64
	hc := &fasthttp.Client{MaxConnsPerHost: conns, ReadTimeout: 30 * time.Second}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	t0 := time.Now()
	for g := 0; g < conns; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for next.Add(1) <= int64(b.N) {
				req.SetRequestURI(url)
				req.Header.SetMethod("POST")
				req.Header.SetContentType(ctype)
				req.SetBody(body)
				if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 202 {
					b.Errorf("push: %v %d %s", err, resp.StatusCode(), resp.Body())
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N*msgs)/time.Since(t0).Seconds(), "msgs/s")
}
