package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/spool"
)

// BenchmarkForward measures the forwarder alone: b.N 1 KiB messages
// already in the spool, spread over 1 or 16 topics, delivered to a sink
// that discards them. One op is one message.
//
//	go test -run x -bench Forward -count 5 ./agent
func BenchmarkForward(b *testing.B) {
	for _, topics := range []int{1, 16} {
		b.Run(fmt.Sprintf("topics=%d", topics), func(b *testing.B) {
			dir := b.TempDir()
			sp, err := spool.Open(filepath.Join(dir, "s"), spool.Options{Sync: spool.SyncNever, MaxBytes: 64 << 30, Logger: quiet()})
			if err != nil {
				b.Fatal(err)
			}
			dl, _ := spool.Open(filepath.Join(dir, "d"), spool.Options{Logger: quiet()})
			c, err := sp.Cursor("d", spool.CursorOptions{}) // a new cursor starts at the tail
			if err != nil {
				b.Fatal(err)
			}
			c.Release()
			value := make([]byte, 1024)
			var recs [][]byte
			for i := 0; i < b.N; i++ {
				m := Msg{Time: time.Now().UnixNano(), Partition: sink.NoPartition, Topic: fmt.Sprint("t", i%topics), Sinks: []string{"d"}, Value: value}
				recs = append(recs, appendMsg(nil, &m))
				if len(recs) == 1000 || i == b.N-1 {
					if _, err := sp.Append(context.Background(), recs...); err != nil {
						b.Fatal(err)
					}
					recs = recs[:0]
				}
			}
			var n atomic.Int64
			done := make(chan struct{})
			discard := funcSink{write: func(_ context.Context, msgs []sink.Message) error {
				if n.Add(int64(len(msgs))) == int64(b.N) {
					close(done)
				}
				return nil
			}}
			b.ResetTimer()
			a, err := New(Options{Spool: sp, DeadLetter: dl, Listen: "127.0.0.1:0", AdminListen: "-", Logger: quiet(),
				Sinks: []SinkSpec{{Name: "d", Sink: discard}}})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			stopped := make(chan struct{})
			go func() { a.Run(ctx); close(stopped) }()
			<-done
			b.StopTimer()
			cancel()
			<-stopped
		})
	}
}
