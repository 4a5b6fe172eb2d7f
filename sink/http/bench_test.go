package httpsink

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sluiceio/sluice/sink/sinktest"
)

// BenchmarkWrite posts batches of 1000 messages of 1 KiB (JSON, text and
// binary values in turn) to a local server that reads and discards them.
func BenchmarkWrite(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	msgs := sinktest.Generate("bench-", 1000, 1024)
	var size int64
	for _, m := range msgs {
		size += int64(len(m.Value))
	}
	for _, gz := range []bool{false, true} {
		name := "plain"
		if gz {
			name = "gzip"
		}
		b.Run(name, func(b *testing.B) {
			w, err := New(Options{URL: srv.URL + "/v1/messages", Gzip: gz})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close(context.Background())
			ctx := context.Background()
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				if err := w.Write(ctx, msgs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(msgs))/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
