package agent

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/spool"
)

// BenchmarkCallbackReports measures how fast owed reports reach a quick
// receiver once their messages are delivered, with few and with many
// owed at once; the two cells are the comparison (flat = dispatch cost
// does not grow with the owed count):
//
//	go test -run x -bench CallbackReports -benchtime 1x -count 3 ./agent
func BenchmarkCallbackReports(b *testing.B) {
	for _, owed := range []int{3000, 30000} {
		b.Run(fmt.Sprintf("owed=%d", owed), func(b *testing.B) {
			var got atomic.Int64
			recv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { got.Add(1) }))
			defer recv.Close()
			var line bytes.Buffer
			for i := 0; i < 1000; i++ {
				fmt.Fprintf(&line, "m%06d\n", i)
			}
			var total time.Duration
			for i := 0; i < b.N; i++ {
				got.Store(0)
				total += benchCallbackRound(b, recv.URL, owed, line.Bytes(), &got)
			}
			b.ReportMetric(float64(owed*b.N)/total.Seconds(), "reports/s")
		})
	}
}

func benchCallbackRound(b *testing.B, url string, owed int, body []byte, got *atomic.Int64) time.Duration {
	dir := b.TempDir()
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	dl, err := spool.Open(filepath.Join(dir, "deadletter"), spool.Options{Logger: quiet(), FullPolicy: spool.DropOldest})
	if err != nil {
		b.Fatal(err)
	}
	var paused atomic.Bool
	paused.Store(true)
	s := funcSink{write: func(context.Context, []sink.Message) error {
		if paused.Load() {
			return errTransient
		}
		return nil
	}}
	a, err := New(Options{Spool: sp, DeadLetter: dl, Listen: "127.0.0.1:0", AdminListen: "-", Logger: quiet(),
		DrainTimeout: 100 * time.Millisecond,
		Sinks:        []SinkSpec{{Name: "s", Sink: s, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond}}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-a.Ready()
	in, _ := a.Addrs()
	for n := 0; n < owed; n += 1000 {
		req, _ := http.NewRequest("POST", "http://"+in+"/v1/topics/t", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Sluice-Callback", url+"/cb")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 202 {
			b.Fatalf("push: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	// Every report copied and owed before the clock starts.
	for a.cb.pending.Get() < float64(owed) {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	paused.Store(false)
	deadline := start.Add(5 * time.Minute)
	for got.Load() < int64(owed) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d reports", got.Load(), owed)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}
