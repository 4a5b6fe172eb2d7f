package loadgen

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Report is the outcome of a Run.
type Report struct {
	RunID       string
	URL         string
	Mode        Mode
	Connections int
	Batch       int
	Size        int
	Topics      []string
	Keys        int
	Rate        float64 // target msgs/s; 0 = closed loop
	Elapsed     time.Duration

	// Requests completed (answered or failed in transport) and the
	// messages they carried.
	Requests int64
	Messages int64
	// Acked messages (2xx replies) and the bytes of their values.
	Acked      int64
	AckedBytes int64
	// Errors counts failed requests by "<status> <code>" ("503
	// spool_full"; the status alone when the reply has no code) or
	// "transport <kind>" (timeout, refused, closed, error) when no reply
	// came. ErrorSamples holds the first message seen for each key.
	Errors       map[string]int64
	ErrorSamples map[string]string
	// AckStatus counts acked messages by reply status with Sluice-Ack:
	// delivered (delivered, pending, failed, dropped).
	AckStatus map[string]int64

	// Open loop: requests in the schedule, and those never sent because
	// the run ended (the target fell behind the rate by more than Grace).
	Scheduled int64
	Missed    int64

	MsgsPerSec float64 // acked messages per second
	MBPerSec   float64 // acked value bytes per second, 10^6 bytes
	// Latency of acknowledged requests: from send (closed loop) or from
	// the scheduled send time (open loop) to the reply.
	Latency Latency

	// AckedIDs, with Config.Verify: every acknowledged message, per
	// connection in push order.
	AckedIDs []Acked
	// Verify is set by callers that verified the run's deliveries.
	Verify *VerifyReport
}

func (r *runner) report(elapsed time.Duration) Report {
	c := r.cfg
	rep := Report{
		RunID: c.RunID, URL: c.URL, Mode: c.Mode, Connections: c.Connections, Batch: c.Batch,
		Size: c.Size, Topics: r.topics, Keys: c.Keys, Rate: c.Rate, Elapsed: elapsed,
		Errors: map[string]int64{}, ErrorSamples: map[string]string{}, AckStatus: map[string]int64{},
	}
	h := new(Histogram)
	for _, w := range r.workers {
		rep.Requests += w.requests
		rep.Messages += w.messages
		rep.Acked += w.ackedN.Load()
		rep.AckedBytes += w.ackedBytes
		for k, v := range w.errors {
			rep.Errors[k] += v
			if _, ok := rep.ErrorSamples[k]; !ok {
				rep.ErrorSamples[k] = w.samples[k]
			}
		}
		for k, v := range w.statuses {
			rep.AckStatus[k] += v
		}
		rep.AckedIDs = append(rep.AckedIDs, w.ackedIDs...)
		h.Merge(&w.hist)
	}
	if c.Rate > 0 {
		rep.Scheduled = r.scheduled
		rep.Missed = r.scheduled - rep.Requests
	}
	if s := elapsed.Seconds(); s > 0 {
		rep.MsgsPerSec = float64(rep.Acked) / s
		rep.MBPerSec = float64(rep.AckedBytes) / 1e6 / s
	}
	rep.Latency = h.Summary()
	return rep
}

// ErrorCount returns the number of failed requests.
func (r Report) ErrorCount() int64 {
	var n int64
	for _, v := range r.Errors {
		n += v
	}
	return n
}

type latencyJSON struct {
	Count  uint64  `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p99_9_ms"`
	MaxMs  float64 `json:"max_ms"`
}

type reportJSON struct {
	RunID       string            `json:"run_id"`
	URL         string            `json:"url"`
	Mode        Mode              `json:"mode"`
	Connections int               `json:"connections"`
	Batch       int               `json:"batch"`
	Size        int               `json:"size"`
	Topics      []string          `json:"topics"`
	Keys        int               `json:"keys"`
	Rate        float64           `json:"rate"`
	ElapsedS    float64           `json:"elapsed_s"`
	Requests    int64             `json:"requests"`
	Messages    int64             `json:"messages"`
	Acked       int64             `json:"acked"`
	AckedBytes  int64             `json:"acked_bytes"`
	Errors      map[string]int64  `json:"errors"`
	Samples     map[string]string `json:"error_samples,omitempty"`
	AckStatus   map[string]int64  `json:"ack_status,omitempty"`
	Scheduled   int64             `json:"scheduled,omitempty"`
	Missed      int64             `json:"missed,omitempty"`
	MsgsPerSec  float64           `json:"msgs_per_sec"`
	MBPerSec    float64           `json:"mb_per_sec"`
	Latency     latencyJSON       `json:"latency"`
	Verify      *VerifyReport     `json:"verify,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// JSON returns the report as indented JSON (durations in milliseconds,
// AckedIDs left out).
func (r Report) JSON() ([]byte, error) {
	l := r.Latency
	return json.MarshalIndent(reportJSON{
		RunID: r.RunID, URL: r.URL, Mode: r.Mode, Connections: r.Connections, Batch: r.Batch,
		Size: r.Size, Topics: r.Topics, Keys: r.Keys, Rate: r.Rate, ElapsedS: r.Elapsed.Seconds(),
		Requests: r.Requests, Messages: r.Messages, Acked: r.Acked, AckedBytes: r.AckedBytes,
		Errors: r.Errors, Samples: r.ErrorSamples, AckStatus: r.AckStatus,
		Scheduled: r.Scheduled, Missed: r.Missed, MsgsPerSec: r.MsgsPerSec, MBPerSec: r.MBPerSec,
		Latency: latencyJSON{
			Count: l.Count, MeanMs: ms(l.Mean), P50Ms: ms(l.P50), P90Ms: ms(l.P90),
			P99Ms: ms(l.P99), P999Ms: ms(l.P999), MaxMs: ms(l.Max),
		},
		Verify: r.Verify,
	}, "", "  ")
}

// WriteText writes the report for humans.
func (r Report) WriteText(w io.Writer) {
	loop := "closed loop"
	if r.Rate > 0 {
		loop = fmt.Sprintf("open loop at %.0f msg/s", r.Rate)
	}
	keys := fmt.Sprint(r.Keys, " keys")
	if r.Keys < 0 {
		keys = "no keys"
	}
	fmt.Fprintf(w, "%s to %s: %d connections, batch %d, %d B values, %d topic(s), %s, %s, %s (run %s)\n",
		r.Mode, r.URL, r.Connections, r.Batch, r.Size, len(r.Topics), keys, loop,
		r.Elapsed.Round(time.Millisecond), r.RunID)
	errs := r.ErrorCount()
	fmt.Fprintf(w, "requests    %d (%d ok, %d failed)\n", r.Requests, r.Requests-errs, errs)
	fmt.Fprintf(w, "messages    %d acked of %d sent\n", r.Acked, r.Messages)
	if len(r.AckStatus) > 0 {
		fmt.Fprintf(w, "ack status  %s\n", joinCounts(r.AckStatus, ", "))
	}
	if r.Rate > 0 {
		fmt.Fprintf(w, "schedule    %d requests, %d sent, %d missed\n", r.Scheduled, r.Requests, r.Missed)
	}
	var reqRate float64
	if s := r.Elapsed.Seconds(); s > 0 {
		reqRate = float64(r.Requests-errs) / s
	}
	fmt.Fprintf(w, "throughput  %.0f msg/s, %.1f MB/s, %.0f req/s\n", r.MsgsPerSec, r.MBPerSec, reqRate)
	l := r.Latency
	fmt.Fprintf(w, "latency     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s, %d acked requests)\n",
		fmtDuration(l.P50), fmtDuration(l.P90), fmtDuration(l.P99), fmtDuration(l.P999),
		fmtDuration(l.Max), fmtDuration(l.Mean), l.Count)
	if errs == 0 {
		fmt.Fprintln(w, "errors      none")
	}
	for _, k := range sortedKeys(r.Errors) {
		fmt.Fprintf(w, "error       %-28s %d", k, r.Errors[k])
		if s := r.ErrorSamples[k]; s != "" {
			fmt.Fprintf(w, "  (%s)", truncate(s, 120))
		}
		fmt.Fprintln(w)
	}
	if r.Verify != nil {
		r.Verify.WriteText(w)
	}
}

// sortedKeys returns the keys of m, largest count first.
func sortedKeys(m map[string]int64) []string {
	return slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		return cmp.Or(cmp.Compare(m[b], m[a]), strings.Compare(a, b))
	})
}

func joinCounts(m map[string]int64, sep string) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, sep)
}

func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// fmtDuration prints d with three significant digits.
func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
