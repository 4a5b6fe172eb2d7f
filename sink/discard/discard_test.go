package discard_test

import (
	"context"
	"testing"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/discard"
	"github.com/sluiceio/sluice/sink/sinktest"
)

func TestConformance(t *testing.T) {
	var d *discard.Writer
	sinktest.Run(t, sinktest.Harness{
		New:   func(t *testing.T) sink.Sink { d = discard.New(); return d },
		Count: func(t *testing.T) int { return int(d.Count()) },
	})
}

func TestCounts(t *testing.T) {
	d := discard.New()
	ctx := context.Background()
	for _, n := range []int{3, 0, 5} {
		if err := d.Write(ctx, sinktest.Generate("m", n, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if d.Count() != 8 || d.Batches() != 2 {
		t.Fatalf("Count %d, Batches %d; want 8, 2", d.Count(), d.Batches())
	}
}

func BenchmarkWrite(b *testing.B) {
	d := discard.New()
	msgs := sinktest.Generate("bench-", 1000, 1024)
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Write(context.Background(), msgs); err != nil {
			b.Fatal(err)
		}
	}
}
