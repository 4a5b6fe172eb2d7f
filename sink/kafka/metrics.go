package kafka

import (
	"github.com/VictoriaMetrics/metrics"

	"github.com/sluiceio/sluice/sink/internal/sinkmetrics"
)

// sinkMetrics records the series the queue sinks share (see
// sink/internal/sinkmetrics); nil-safe.
type sinkMetrics = sinkmetrics.Metrics

// writeResult is what one Write reports to the metrics.
type writeResult = sinkmetrics.Result

func newSinkMetrics(set *metrics.Set, name string) *sinkMetrics {
	return sinkmetrics.New(set, name)
}
