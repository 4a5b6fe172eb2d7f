package spool

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/fstype"

	"github.com/tidwall/wal"
)

func fsType(dir string) string { return fstype.Name(dir) }

// BenchmarkAppend: concurrent appenders of 1 KiB records, single records
// and 100-record batches, per sync policy. Reports records/s and the mean
// group-commit size formed; compare with BenchmarkRawWAL at that batch size.
//
//	go test -run x -bench 'Append|RawWAL' -benchtime 2s -count 5 ./spool
func BenchmarkAppend(b *testing.B) {
	rec := make([]byte, 1024)
	for _, policy := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		for _, per := range []int{1, 100} {
			for _, conc := range []int{1, 16, 64, 256} {
				b.Run(fmt.Sprintf("sync=%s/batch=%d/appenders=%d", policy, per, conc), func(b *testing.B) {
					dir := b.TempDir()
					s, err := Open(dir, Options{Sync: policy, MaxBytes: 64 << 30, Logger: quiet()})
					if err != nil {
						b.Fatal(err)
					}
					defer s.Close()
					recs := make([][]byte, per)
					for i := range recs {
						recs[i] = rec
					}
					b.Logf("fs=%s", fsType(dir))
					b.SetBytes(int64(per * len(rec)))
					var wg sync.WaitGroup
					next := make(chan struct{}, b.N)
					for i := 0; i < b.N; i++ {
						next <- struct{}{}
					}
					close(next)
					b.ResetTimer()
					start := time.Now()
					for g := 0; g < conc; g++ {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for range next {
								if _, err := s.Append(context.Background(), recs...); err != nil {
									b.Error(err)
									return
								}
							}
						}()
					}
					wg.Wait()
					el := time.Since(start)
					st := s.Stats()
					b.ReportMetric(float64(st.Appended)/el.Seconds(), "records/s")
					b.ReportMetric(st.MeanCommitSize, "records/commit")
				})
			}
		}
	}
}

// BenchmarkRawWAL is the ceiling: tidwall/wal WriteBatch of n 1 KiB
// entries with one fsync each, no spool around it, segments of the
// spool's default size.
func BenchmarkRawWAL(b *testing.B) {
	rec := make([]byte, 1024+headerSize)
	for _, n := range []int{1, 16, 64, 256, 1024} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			l, err := wal.Open(dir, &wal.Options{SegmentSize: 1 << 20, NoCopy: true, AllowEmpty: true, SegmentCacheSize: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			b.Logf("fs=%s", fsType(dir))
			b.SetBytes(int64(n * 1024))
			var batch wal.Batch
			idx := uint64(1)
			start := time.Now()
			for i := 0; i < b.N; i++ {
				for j := 0; j < n; j++ {
					batch.Write(idx, rec)
					idx++
				}
				if err := l.WriteBatch(&batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "records/s")
		})
	}
}

// BenchmarkAppendDuringTruncation reports append latency percentiles while
// a consumer keeps acknowledging and the front keeps being truncated
// (tidwall's TruncateFront rewrites a segment under the lock appends need).
func BenchmarkAppendDuringTruncation(b *testing.B) {
	for _, trunc := range []bool{false, true} {
		b.Run(fmt.Sprintf("truncating=%v", trunc), func(b *testing.B) {
			o := Options{MaxBytes: 64 << 30, Logger: quiet(), CursorSyncInterval: 10 * time.Millisecond, TruncateSegments: 2}
			if !trunc {
				o.TruncateSegments = 1 << 30
			}
			s, err := Open(b.TempDir(), o)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			c, _ := s.Cursor("c", CursorOptions{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				for {
					recs, err := c.Read(ctx, 4096, 4<<20)
					if err != nil {
						return
					}
					c.Ack(recs[len(recs)-1].ID.Seq)
				}
			}()
			rec := make([]byte, 1024)
			lat := make([]time.Duration, 0, b.N)
			var mu sync.Mutex
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					t0 := time.Now()
					if _, err := s.Append(context.Background(), rec); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
			b.ReportMetric(float64(s.Stats().Truncations), "truncations")
		})
	}
}

func TestMain(m *testing.M) { os.Exit(m.Run()) }
