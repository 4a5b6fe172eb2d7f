package nats

import (
	"fmt"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Metric names; every series carries the label sink="<Options.Name>". The
// names shared with the Kafka sink mean the same, so that one dashboard
// serves both.
const (
	metricProduceSeconds = "sluice_sink_produce_seconds"          // histogram: duration of Write calls that sent something
	metricBatchMessages  = "sluice_sink_batch_messages"           // histogram: messages per Write
	metricDelivered      = "sluice_sink_delivered_messages_total" // counter: messages acknowledged
	metricDeliveredBytes = "sluice_sink_delivered_bytes_total"    // counter: key+value bytes acknowledged
	metricDuplicates     = "sluice_sink_duplicates_total"         // counter: PubAcks saying the stream already had the message
	metricErrors         = "sluice_sink_errors_total"             // counter{reason}: failed Writes (once per reason present)
	metricFailedMessages = "sluice_sink_failed_messages_total"    // counter{reason}: messages not delivered by a Write
	metricAuthFailing    = "sluice_sink_auth_failing"             // gauge 0/1
	metricServerUp       = "sluice_sink_broker_up"                // gauge 0/1: connected to a server
)

var (
	latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	batchBuckets   = metrics.ExponentialBuckets(1, 2, 16) // 1 .. 32768
)

// sinkMetrics is nil-safe: a nil *sinkMetrics records nothing.
type sinkMetrics struct {
	set   *metrics.Set
	label string

	latency        *metrics.PrometheusHistogram
	batch          *metrics.PrometheusHistogram
	delivered      *metrics.Counter
	deliveredBytes *metrics.Counter
	duplicates     *metrics.Counter
	authFailing    *metrics.Gauge

	mu       sync.Mutex
	serverUp *metrics.Gauge // registered at the first connection event
	byReason map[string]*metrics.Counter
}

func newSinkMetrics(set *metrics.Set, name string) *sinkMetrics {
	if set == nil {
		return nil
	}
	l := fmt.Sprintf("sink=%q", name)
	return &sinkMetrics{
		set:            set,
		label:          l,
		latency:        set.GetOrCreatePrometheusHistogramExt(metricProduceSeconds+"{"+l+"}", latencyBuckets),
		batch:          set.GetOrCreatePrometheusHistogramExt(metricBatchMessages+"{"+l+"}", batchBuckets),
		delivered:      set.GetOrCreateCounter(metricDelivered + "{" + l + "}"),
		deliveredBytes: set.GetOrCreateCounter(metricDeliveredBytes + "{" + l + "}"),
		duplicates:     set.GetOrCreateCounter(metricDuplicates + "{" + l + "}"),
		authFailing:    set.GetOrCreateGauge(metricAuthFailing+"{"+l+"}", nil),
		byReason:       make(map[string]*metrics.Counter),
	}
}

func (m *sinkMetrics) reasonCounter(metric, reason string) *metrics.Counter {
	key := metric + "{" + m.label + ",reason=" + fmt.Sprintf("%q", reason) + "}"
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.byReason[key]
	if c == nil {
		c = m.set.GetOrCreateCounter(key)
		m.byReason[key] = c
	}
	return c
}

// writeResult is what one Write reports to the metrics.
type writeResult struct {
	sent           bool
	n              int
	delivered      int
	deliveredBytes int
	duplicates     int
	took           time.Duration
	failed         map[string]int // reason -> messages
}

func (m *sinkMetrics) observe(r *writeResult) {
	if m == nil {
		return
	}
	m.batch.Update(float64(r.n))
	if r.sent {
		m.latency.Update(r.took.Seconds())
	}
	m.delivered.Add(r.delivered)
	m.deliveredBytes.Add(r.deliveredBytes)
	m.duplicates.Add(r.duplicates)
	for reason, n := range r.failed {
		m.reasonCounter(metricErrors, reason).Inc()
		m.reasonCounter(metricFailedMessages, reason).Add(n)
	}
}

func (m *sinkMetrics) setAuthFailing(v bool) {
	if m != nil {
		m.authFailing.Set(b2f(v))
	}
}

// setServerUp sets the broker_up gauge, registering it on first use: until
// the first connection attempt ended the series is absent rather than 0.
func (m *sinkMetrics) setServerUp(v bool) {
	if m == nil {
		return
	}
	m.mu.Lock()
	if m.serverUp == nil {
		m.serverUp = m.set.GetOrCreateGauge(metricServerUp+"{"+m.label+"}", nil)
	}
	g := m.serverUp
	m.mu.Unlock()
	g.Set(b2f(v))
}

func b2f(v bool) float64 {
	if v {
		return 1
	}
	return 0
}
