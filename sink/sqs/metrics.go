package sqs

import (
	"fmt"
	"sync"

	"github.com/VictoriaMetrics/metrics"
)

// Metric names; every series carries sink="<Options.Name>".
const (
	metricRequestSeconds = "sluice_sink_sqs_request_seconds"      // histogram: SendMessageBatch round trips
	metricDelivered      = "sluice_sink_delivered_messages_total" // counter: messages SQS accepted
	metricFailedMessages = "sluice_sink_failed_messages_total"    // counter{reason}: messages a Write did not deliver
	metricAuthFailing    = "sluice_sink_auth_failing"             // gauge 0/1
	metricQueueUp        = "sluice_sink_broker_up"                // gauge 0/1: the last answer came from SQS and the queue exists
)

var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// sinkMetrics is nil-safe.
type sinkMetrics struct {
	set         *metrics.Set
	label       string
	latency     *metrics.PrometheusHistogram
	delivered   *metrics.Counter
	authFailing *metrics.Gauge

	mu       sync.Mutex
	queueUp  *metrics.Gauge // registered by the first Write
	byReason map[string]*metrics.Counter
}

func newSinkMetrics(set *metrics.Set, name string) *sinkMetrics {
	if set == nil {
		return nil
	}
	l := fmt.Sprintf("sink=%q", name)
	return &sinkMetrics{
		set:         set,
		label:       l,
		latency:     set.GetOrCreatePrometheusHistogramExt(metricRequestSeconds+"{"+l+"}", latencyBuckets),
		delivered:   set.GetOrCreateCounter(metricDelivered + "{" + l + "}"),
		authFailing: set.GetOrCreateGauge(metricAuthFailing+"{"+l+"}", nil),
		byReason:    make(map[string]*metrics.Counter),
	}
}

func (m *sinkMetrics) request(seconds float64) {
	if m != nil {
		m.latency.Update(seconds)
	}
}

func (m *sinkMetrics) outcome(delivered int, failed map[string]int) {
	if m == nil {
		return
	}
	m.delivered.Add(delivered)
	for reason, n := range failed {
		key := metricFailedMessages + "{" + m.label + ",reason=" + fmt.Sprintf("%q", reason) + "}"
		m.mu.Lock()
		c := m.byReason[key]
		if c == nil {
			c = m.set.GetOrCreateCounter(key)
			m.byReason[key] = c
		}
		m.mu.Unlock()
		c.Add(n)
	}
}

// state sets the gauges after a Write; broker_up is registered by the first
// one (absent until a Write learnt something).
func (m *sinkMetrics) state(up, auth bool) {
	if m == nil {
		return
	}
	m.mu.Lock()
	if m.queueUp == nil {
		m.queueUp = m.set.GetOrCreateGauge(metricQueueUp+"{"+m.label+"}", nil)
	}
	m.mu.Unlock()
	m.queueUp.Set(b2f(up))
	m.authFailing.Set(b2f(auth))
}

func b2f(v bool) float64 {
	if v {
		return 1
	}
	return 0
}
