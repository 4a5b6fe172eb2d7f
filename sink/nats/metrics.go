package nats

import (
	"github.com/VictoriaMetrics/metrics"

	"github.com/sluiceio/sluice/sink/internal/sinkmetrics"
)

// sinkMetrics records the series the queue sinks share (see
// sink/internal/sinkmetrics); nil-safe.
type sinkMetrics = sinkmetrics.Metrics

// writeResult is what one Write reports to the metrics.
type writeResult = sinkmetrics.Result

// metricDuplicates is a counter of this sink's own: PubAcks saying the
// stream already had the message.
const metricDuplicates = "sluice_sink_duplicates_total"

func newSinkMetrics(set *metrics.Set, name string) *sinkMetrics {
	m := sinkmetrics.New(set, name)
	m.Add(metricDuplicates, 0)
	return m
}
