package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// exactQuantile uses the definition Histogram.Quantile promises: the
// smallest sample with at least a fraction q of the samples <= it.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := max(int(math.Ceil(q*float64(len(sorted)))), 1)
	return sorted[rank-1]
}

func checkQuantiles(t *testing.T, name string, samples []time.Duration) {
	t.Helper()
	h := new(Histogram)
	for _, v := range samples {
		h.Record(v)
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	for _, q := range []float64{0, 0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1} {
		want := exactQuantile(sorted, q)
		got := h.Quantile(q)
		if err := math.Abs(float64(got-want)) / float64(want); err > HistogramError {
			t.Errorf("%s: q%v = %v, exact %v: relative error %.4f > %.4f", name, q, got, want, err, HistogramError)
		}
	}
	if h.Min() != sorted[0] || h.Max() != sorted[len(sorted)-1] || h.Count() != uint64(len(samples)) {
		t.Errorf("%s: min %v max %v count %d, want %v %v %d", name, h.Min(), h.Max(), h.Count(), sorted[0], sorted[len(sorted)-1], len(samples))
	}
	var sum time.Duration
	for _, v := range samples {
		sum += v
	}
	if mean := sum / time.Duration(len(samples)); h.Mean() != mean {
		t.Errorf("%s: mean %v, want %v", name, h.Mean(), mean)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 200_000
	gen := func(f func() float64) []time.Duration {
		s := make([]time.Duration, n)
		for i := range s {
			s[i] = max(time.Duration(f()), 1)
		}
		return s
	}
	checkQuantiles(t, "uniform 1µs-1s", gen(func() float64 { return 1e3 + rng.Float64()*(1e9-1e3) }))
	checkQuantiles(t, "exponential mean 2ms", gen(func() float64 { return rng.ExpFloat64() * 2e6 }))
	checkQuantiles(t, "lognormal", gen(func() float64 { return math.Exp(13 + 1.5*rng.NormFloat64()) }))
	checkQuantiles(t, "small exact values", gen(func() float64 { return float64(rng.IntN(250)) }))
	checkQuantiles(t, "bimodal 100µs / 2s", gen(func() float64 {
		if rng.IntN(100) == 0 {
			return 2e9 * (1 + rng.Float64())
		}
		return 1e5 * (1 + rng.Float64())
	}))
}

// TestHistogramBuckets checks the layout: contiguous buckets, each no wider
// than 1/128 of its lower bound.
func TestHistogramBuckets(t *testing.T) {
	prevEnd := uint64(0)
	for i := range numBuckets {
		low, width := bucketRange(i)
		if low != prevEnd {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, low, prevEnd)
		}
		if width > 1 && float64(width)/float64(low) > 1.0/subCount {
			t.Fatalf("bucket %d [%d, +%d) too wide", i, low, width)
		}
		if bucketOf(low) != i || bucketOf(low+width-1) != i {
			t.Fatalf("bucketOf disagrees with bucketRange at %d", i)
		}
		prevEnd = low + width
	}
	if prevEnd != maxValue+1 {
		t.Fatalf("buckets end at %d, want %d", prevEnd, uint64(maxValue)+1)
	}
	h := new(Histogram)
	h.Record(-time.Second)
	h.Record(100 * time.Hour)
	if h.Min() != 0 || h.Max() != maxValue || h.Quantile(1) != maxValue {
		t.Errorf("clamping: min %v max %v", h.Min(), h.Max())
	}
}

func TestHistogramEmptyAndMerge(t *testing.T) {
	var empty Histogram
	if s := empty.Summary(); s != (Latency{}) {
		t.Errorf("empty summary %+v", s)
	}
	// Merge per-goroutine histograms recorded concurrently (and one shared
	// histogram written by all): both must equal recording everything in
	// one.
	const workers, per = 8, 20_000
	parts := make([]*Histogram, workers)
	shared, want := new(Histogram), new(Histogram)
	var wg sync.WaitGroup
	for w := range workers {
		parts[w] = new(Histogram)
		wg.Go(func() {
			for i := range per {
				d := time.Duration((w*per + i) * 997 % 50_000_000)
				parts[w].Record(d)
				shared.Record(d)
			}
		})
	}
	for w := range workers {
		for i := range per {
			want.Record(time.Duration((w*per + i) * 997 % 50_000_000))
		}
	}
	merged := new(Histogram)
	done := make(chan struct{})
	go func() { // a reader while the writers run, as the progress line does
		defer close(done)
		for range 50 {
			r := new(Histogram)
			for _, p := range parts {
				r.Merge(p)
			}
			_ = r.Quantile(0.99)
		}
	}()
	wg.Wait()
	<-done
	for _, p := range parts {
		merged.Merge(p)
	}
	merged.Merge(new(Histogram)) // merging an empty one changes nothing
	if merged.Summary() != want.Summary() || shared.Summary() != want.Summary() {
		t.Errorf("merged %+v\nshared %+v\nwant   %+v", merged.Summary(), shared.Summary(), want.Summary())
	}
}
