package loadgen

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram layout: values below 2^(subBits+1) ns get one bucket each; above,
// every power of two is cut into 2^subBits buckets of equal width, so a
// bucket is never wider than 1/128 of its lower bound. Quantiles report the
// bucket's midpoint: relative error at most 1/256 (0.4%), under the 1%
// promised.
const (
	subBits    = 7
	subCount   = 1 << subBits // buckets per power of two
	maxMag     = 42           // values are clamped below 2^42 ns (about 73 min)
	maxValue   = 1<<maxMag - 1
	numBuckets = (maxMag-subBits-1)*subCount + 2*subCount
)

// HistogramError is the largest relative error of a Histogram quantile.
const HistogramError = 1.0 / (2 * subCount)

// Histogram records durations in log-scaled buckets (HDR-style) from 1 ns to
// about 73 minutes (larger values are clamped) with a relative error of at
// most HistogramError. Record and the readers are lock-free and safe for
// concurrent use; a load run gives every connection its own Histogram (no
// shared cache lines on the hot path) and merges them for reports.
//
// The zero value is ready to use. A Histogram must not be copied after use.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	total  atomic.Uint64
	sum    atomic.Uint64 // ns
	min    atomic.Int64  // ns + 1; 0 = nothing recorded
	max    atomic.Int64  // ns
}

// bucketOf returns the bucket index of v (0 <= v <= maxValue).
func bucketOf(v uint64) int {
	mag := bits.Len64(v)
	if mag <= subBits+1 {
		return int(v)
	}
	shift := mag - subBits - 1
	return shift*subCount + int(v>>shift)
}

// bucketRange returns the lowest value of bucket i and its width.
func bucketRange(i int) (low, width uint64) {
	if i < 2*subCount {
		return uint64(i), 1
	}
	shift := i/subCount - 1
	top := uint64(i - shift*subCount) // in [subCount, 2*subCount)
	return top << shift, 1 << shift
}

// Record adds one duration. Negative durations count as 0.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	v = max(v, 0)
	v = min(v, maxValue)
	h.counts[bucketOf(uint64(v))].Add(1)
	h.total.Add(1)
	h.sum.Add(uint64(v))
	for {
		m := h.min.Load()
		if m != 0 && m <= v+1 || h.min.CompareAndSwap(m, v+1) {
			break
		}
	}
	for {
		m := h.max.Load()
		if m >= v || h.max.CompareAndSwap(m, v) {
			break
		}
	}
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	var n uint64
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
			n += c
		}
	}
	if n == 0 {
		return
	}
	h.total.Add(n)
	h.sum.Add(o.sum.Load())
	if m := o.min.Load(); m != 0 {
		for {
			cur := h.min.Load()
			if cur != 0 && cur <= m || h.min.CompareAndSwap(cur, m) {
				break
			}
		}
	}
	om := o.max.Load()
	for {
		cur := h.max.Load()
		if cur >= om || h.max.CompareAndSwap(cur, om) {
			break
		}
	}
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Min returns the smallest recorded value (exact), 0 when empty.
func (h *Histogram) Min() time.Duration {
	if m := h.min.Load(); m > 0 {
		return time.Duration(m - 1)
	}
	return 0
}

// Max returns the largest recorded value (exact), 0 when empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Mean returns the mean of the recorded values, 0 when empty.
func (h *Histogram) Mean() time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Quantile returns the smallest recorded value v such that at least a
// fraction q of all values is <= v, within HistogramError (exact for the
// smallest and the largest value); 0 when empty. q is clamped to [0, 1].
func (h *Histogram) Quantile(q float64) time.Duration {
	var counts [numBuckets]uint64
	var n uint64
	for i := range h.counts {
		counts[i] = h.counts[i].Load()
		n += counts[i]
	}
	if n == 0 {
		return 0
	}
	q = max(0, min(q, 1))
	rank := max(uint64(math.Ceil(q*float64(n))), 1)
	switch {
	case rank >= n:
		return h.Max() // exact
	case rank == 1:
		return h.Min() // exact
	}
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen >= rank {
			low, width := bucketRange(i)
			v := time.Duration(low + width/2)
			return max(h.Min(), min(v, h.Max()))
		}
	}
	return h.Max()
}

// Latency summarizes a Histogram.
type Latency struct {
	Count uint64
	Mean  time.Duration
	P50   time.Duration
	P90   time.Duration
	P99   time.Duration
	P999  time.Duration
	Max   time.Duration
}

// Summary returns the count, mean, p50, p90, p99, p99.9 and max.
func (h *Histogram) Summary() Latency {
	return Latency{
		Count: h.Count(),
		Mean:  h.Mean(),
		P50:   h.Quantile(0.50),
		P90:   h.Quantile(0.90),
		P99:   h.Quantile(0.99),
		P999:  h.Quantile(0.999),
		Max:   h.Max(),
	}
}
