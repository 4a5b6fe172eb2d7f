package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/spool"
)

// BenchmarkLoadKept measures what finding kept ids costs at start: one
// read of a spool of 100,000 messages (value 100 bytes, every 100th with
// a kept id). One op is one whole start-up scan; records/s is reported.
//
//	go test -run x -bench LoadKept -count 5 ./agent
func BenchmarkLoadKept(b *testing.B) {
	sp, err := spool.Open(filepath.Join(b.TempDir(), "s"), spool.Options{Sync: spool.SyncNever, MaxBytes: 1 << 30, Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	c, err := sp.Cursor("d", spool.CursorOptions{}) // holds the records
	if err != nil {
		b.Fatal(err)
	}
	defer c.Release()
	const n = 100000
	value := make([]byte, 100)
	var recs [][]byte
	for i := range n {
		m := Msg{Time: time.Now().UnixNano(), Partition: sink.NoPartition, Topic: "t", Sinks: []string{"d"}, Value: value}
		if i%100 == 0 {
			m.ID = fmt.Sprint("upstream-", i)
		}
		recs = append(recs, appendMsg(nil, &m))
		if len(recs) == 1000 {
			if _, err := sp.Append(context.Background(), recs...); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	seen := 0
	if err := sp.Scan(time.Time{}, func(spool.Record) bool { seen++; return true }); err != nil || seen != n {
		b.Fatalf("scan saw %d records (%v), want %d", seen, err, n)
	}
	b.ResetTimer()
	for range b.N {
		r := newRecords(65536)
		if err := r.loadKept(sp); err != nil {
			b.Fatal(err)
		}
		if _, ok := r.lookupChained("upstream-99900"); !ok {
			b.Fatal("kept id not found")
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
