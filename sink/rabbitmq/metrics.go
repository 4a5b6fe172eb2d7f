package rabbitmq

import (
	"github.com/VictoriaMetrics/metrics"

	"github.com/sluiceio/sluice/sink/internal/sinkmetrics"
)

// sinkMetrics records the series the queue sinks share (see
// sink/internal/sinkmetrics); nil-safe.
type sinkMetrics = sinkmetrics.Metrics

// writeResult is what one Write reports to the metrics.
type writeResult = sinkmetrics.Result

// metricBlocked is a gauge 0/1 of this sink's own: the broker blocks the
// connection (memory or disk alarm).
const metricBlocked = "sluice_sink_blocked"

func newSinkMetrics(set *metrics.Set, name string) *sinkMetrics {
	m := sinkmetrics.New(set, name)
	m.SetGauge(metricBlocked, false)
	return m
}
