package kafkaproto

import (
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// serverMetrics are the listener's Prometheus series.
type serverMetrics struct {
	set         *metrics.Set
	conns       atomic.Int64
	refused     *metrics.Counter
	badRequests *metrics.Counter
	records     *metrics.Counter
	duplicates  *metrics.Counter
	// authFailures counts refused SASL exchanges (wrong password,
	// mechanism other than PLAIN, out of order).
	authFailures *metrics.Counter
}

func newServerMetrics(set *metrics.Set) *serverMetrics {
	m := &serverMetrics{
		set:          set,
		refused:      set.GetOrCreateCounter(`sluice_kafka_listener_connections_refused_total`),
		badRequests:  set.GetOrCreateCounter(`sluice_kafka_listener_bad_requests_total`),
		records:      set.GetOrCreateCounter(`sluice_kafka_listener_records_total`),
		duplicates:   set.GetOrCreateCounter(`sluice_kafka_listener_duplicate_batches_total`),
		authFailures: set.GetOrCreateCounter(`sluice_kafka_listener_auth_failures_total`),
	}
	set.GetOrCreateGauge(`sluice_kafka_listener_connections`, func() float64 { return float64(m.conns.Load()) })
	return m
}

// request counts a request by API. Keys no Kafka version defines share
// the label "unknown": a peer cycling through 65,536 keys must not make as
// many series.
func (m *serverMetrics) request(key int16) {
	name := "unknown"
	if kmsg.RequestForKey(key) != nil {
		name = kmsg.NameForKey(key)
	}
	m.set.GetOrCreateCounter(`sluice_kafka_listener_requests_total{api="` + name + `"}`).Inc()
}

func (m *serverMetrics) produceError(code int16) {
	name := "UNKNOWN"
	if e := kerr.ErrorForCode(code); e != nil {
		if ke, ok := e.(*kerr.Error); ok {
			name = ke.Message
		}
	}
	m.set.GetOrCreateCounter(`sluice_kafka_listener_produce_errors_total{error="` + name + `"}`).Inc()
}

var codecNames = [...]string{"none", "gzip", "snappy", "lz4", "zstd"}

// batch counts a valid batch by codec.
func (m *serverMetrics) batch(codec int) {
	m.set.GetOrCreateCounter(`sluice_kafka_listener_batches_total{codec="` + codecNames[codec] + `"}`).Inc()
}
