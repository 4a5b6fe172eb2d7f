// Package sinkmetrics records the series the queue sinks (kafka, rabbitmq,
// amqp1, nats) share, under the same names, so that one dashboard serves
// them all. Every series carries the label sink="<name>".
package sinkmetrics

import (
	"fmt"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Names of the shared series.
const (
	ProduceSeconds = "sluice_sink_produce_seconds"          // histogram: duration of Write calls that sent something
	BatchMessages  = "sluice_sink_batch_messages"           // histogram: messages per Write
	Delivered      = "sluice_sink_delivered_messages_total" // counter: messages the upstream acknowledged
	DeliveredBytes = "sluice_sink_delivered_bytes_total"    // counter: bytes acknowledged (what each sink counts: key+value, body)
	Errors         = "sluice_sink_errors_total"             // counter{reason}: failed Writes (once per reason present)
	FailedMessages = "sluice_sink_failed_messages_total"    // counter{reason}: messages not delivered by a Write
	AuthFailing    = "sluice_sink_auth_failing"             // gauge 0/1
	BrokerUp       = "sluice_sink_broker_up"                // gauge 0/1: the upstream was reached (each sink says when)
)

var (
	latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	batchBuckets   = metrics.ExponentialBuckets(1, 2, 16) // 1 .. 32768
)

// Metrics is nil-safe: a nil *Metrics records nothing.
type Metrics struct {
	set   *metrics.Set
	label string

	latency        *metrics.PrometheusHistogram
	batch          *metrics.PrometheusHistogram
	delivered      *metrics.Counter
	deliveredBytes *metrics.Counter
	authFailing    *metrics.Gauge

	mu       sync.Mutex
	brokerUp *metrics.Gauge // registered by the first SetBrokerUp
	byReason map[string]*metrics.Counter
}

// New registers the series of sink name in set; nil when set is nil.
func New(set *metrics.Set, name string) *Metrics {
	if set == nil {
		return nil
	}
	l := fmt.Sprintf("sink=%q", name)
	return &Metrics{
		set:            set,
		label:          l,
		latency:        set.GetOrCreatePrometheusHistogramExt(ProduceSeconds+"{"+l+"}", latencyBuckets),
		batch:          set.GetOrCreatePrometheusHistogramExt(BatchMessages+"{"+l+"}", batchBuckets),
		delivered:      set.GetOrCreateCounter(Delivered + "{" + l + "}"),
		deliveredBytes: set.GetOrCreateCounter(DeliveredBytes + "{" + l + "}"),
		authFailing:    set.GetOrCreateGauge(AuthFailing+"{"+l+"}", nil),
		byReason:       make(map[string]*metrics.Counter),
	}
}

func (m *Metrics) reasonCounter(metric, reason string) *metrics.Counter {
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

// Result is what one Write reports.
type Result struct {
	Sent           bool // something went upstream (the latency is observed)
	N              int  // messages in the Write
	Delivered      int
	DeliveredBytes int
	Took           time.Duration
	Failed         map[string]int // reason -> messages
}

// Observe records one Write.
func (m *Metrics) Observe(r *Result) {
	if m == nil {
		return
	}
	m.batch.Update(float64(r.N))
	if r.Sent {
		m.latency.Update(r.Took.Seconds())
	}
	m.delivered.Add(r.Delivered)
	m.deliveredBytes.Add(r.DeliveredBytes)
	for reason, n := range r.Failed {
		m.reasonCounter(Errors, reason).Inc()
		m.reasonCounter(FailedMessages, reason).Add(n)
	}
}

// SetAuthFailing sets the auth_failing gauge.
func (m *Metrics) SetAuthFailing(v bool) {
	if m != nil {
		m.authFailing.Set(b2f(v))
	}
}

// SetBrokerUp sets the broker_up gauge, registering it on first use: until
// the sink has learnt something the series is absent rather than 0.
func (m *Metrics) SetBrokerUp(v bool) {
	if m == nil {
		return
	}
	m.mu.Lock()
	if m.brokerUp == nil {
		m.brokerUp = m.set.GetOrCreateGauge(BrokerUp+"{"+m.label+"}", nil)
	}
	g := m.brokerUp
	m.mu.Unlock()
	g.Set(b2f(v))
}

// SetGauge sets a 0/1 gauge of the sink's own (metric is the name without
// labels), registering it on first use.
func (m *Metrics) SetGauge(metric string, v bool) {
	if m != nil {
		m.set.GetOrCreateGauge(metric+"{"+m.label+"}", nil).Set(b2f(v))
	}
}

// Add adds n to a counter of the sink's own (metric is the name without
// labels), registering it on first use; Add(metric, 0) registers it.
func (m *Metrics) Add(metric string, n int) {
	if m != nil {
		m.set.GetOrCreateCounter(metric + "{" + m.label + "}").Add(n)
	}
}

func b2f(v bool) float64 {
	if v {
		return 1
	}
	return 0
}
