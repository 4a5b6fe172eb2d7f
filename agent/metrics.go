package agent

import (
	"fmt"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// agentMetrics are the Prometheus metrics of the agent. Histograms use
// Prometheus `le` buckets (NewPrometheusHistogram), not vmrange.
type agentMetrics struct {
	set             *metrics.Set
	ingestMessages  *metrics.Counter
	ingestBytes     *metrics.Counter
	requestDuration *metrics.PrometheusHistogram
}

type sinkMetrics struct {
	set           *metrics.Set
	name          string
	delivered     *metrics.Counter
	writeDuration *metrics.PrometheusHistogram

	dlPublished, dlPublishFailed *metrics.Counter
	deliveredAfterDrop           *metrics.Counter
}

func newAgentMetrics(set *metrics.Set) *agentMetrics {
	return &agentMetrics{
		set:             set,
		ingestMessages:  set.GetOrCreateCounter("sluice_ingest_messages_total"),
		ingestBytes:     set.GetOrCreateCounter("sluice_ingest_bytes_total"),
		requestDuration: set.GetOrCreatePrometheusHistogram("sluice_request_duration_seconds"),
	}
}

// FsyncObserver returns the spool OnFsync hook that feeds
// sluice_spool_fsync_duration_seconds in set.
func FsyncObserver(set *metrics.Set) func(time.Duration) {
	h := set.GetOrCreatePrometheusHistogram("sluice_spool_fsync_duration_seconds")
	return func(d time.Duration) { h.Update(d.Seconds()) }
}

func (m *agentMetrics) rejected(code string) {
	m.set.GetOrCreateCounter(fmt.Sprintf(`sluice_ingest_rejected_total{code=%q}`, code)).Inc()
}

func (m *agentMetrics) deadLetter(sinkName, reason string) {
	m.set.GetOrCreateCounter(fmt.Sprintf(`sluice_deadletters_total{sink=%q,reason=%q}`, sinkName, reason)).Inc()
}

func (m *agentMetrics) forSink(name string) *sinkMetrics {
	l := fmt.Sprintf(`{sink=%q}`, name)
	return &sinkMetrics{
		set: m.set, name: name,
		delivered:     m.set.GetOrCreateCounter("sluice_sink_delivered_total" + l),
		writeDuration: m.set.GetOrCreatePrometheusHistogram("sluice_sink_write_duration_seconds" + l),

		dlPublished:     m.set.GetOrCreateCounter("sluice_deadletters_published_total" + l),
		dlPublishFailed: m.set.GetOrCreateCounter("sluice_deadletters_publish_failed_total" + l),

		deliveredAfterDrop: m.set.GetOrCreateCounter("sluice_sink_delivered_after_drop_total" + l),
	}
}

func (s *sinkMetrics) retry(reason string) {
	s.set.GetOrCreateCounter(fmt.Sprintf(`sluice_sink_retries_total{sink=%q,reason=%q}`, s.name, reason)).Inc()
}

// register adds the gauges computed at scrape time.
func (m *agentMetrics) register(a *Agent) {
	sp := a.sp
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	m.set.NewGauge("sluice_up", func() float64 { return b2f(a.ready.Load()) })
	m.set.NewGauge("sluice_draining", func() float64 { return b2f(a.draining.Load()) })
	m.set.NewGauge("sluice_spool_disk_bytes", func() float64 { return float64(sp.Stats().DiskBytes) })
	m.set.NewGauge("sluice_spool_segments", func() float64 { return float64(sp.Stats().Segments) })
	m.set.NewGauge("sluice_spool_backlog_bytes_total", func() float64 { return float64(sp.Stats().BacklogBytes) })
	m.set.NewGauge("sluice_spool_max_bytes", func() float64 { return float64(sp.Stats().MaxBytes) })
	m.set.NewGauge("sluice_spool_group_commit_records", func() float64 { return sp.Stats().MeanCommitSize })
	m.set.NewGauge("sluice_spool_appended_total", func() float64 { return float64(sp.Stats().Appended) })
	m.set.NewGauge("sluice_spool_commits_total", func() float64 { return float64(sp.Stats().Commits) })
	m.set.NewGauge("sluice_spool_write_errors_total", func() float64 { return float64(sp.Stats().WriteErrors) })
	m.set.NewGauge("sluice_spool_disk_error", func() float64 { return b2f(sp.Stats().DiskError != "") })
	m.set.NewGauge("sluice_spool_repairs_total", func() float64 { return float64(sp.Stats().Repairs) })
	m.set.NewGauge("sluice_spool_quarantines_total", func() float64 { return float64(sp.Stats().Quarantines) })
	m.set.NewGauge("sluice_spool_corruptions_total", func() float64 { return float64(sp.Stats().Corruptions) })
	m.set.NewGauge("sluice_spool_read_errors_total", func() float64 { return float64(sp.Stats().ReadErrors) })
	m.set.NewGauge("sluice_spool_lost_records_total", func() float64 { return float64(sp.Stats().LostRecords) })
	m.set.NewGauge("sluice_spool_dropped_total", func() float64 { return float64(sp.Stats().Dropped) })
	m.set.NewGauge("sluice_spool_truncations_total", func() float64 { return float64(sp.Stats().Truncations) })
	m.set.NewGauge("sluice_spool_cursor_resets_total", func() float64 { return float64(sp.Stats().CursorResets) })
	m.set.NewGauge("sluice_spool_orphan_cursors", func() float64 {
		n := 0
		for _, c := range sp.Cursors() {
			if !c.InUse {
				n++
			}
		}
		return float64(n)
	})
	m.set.NewGauge("sluice_spool_orphan_backlog_bytes", func() float64 {
		var n int64
		for _, c := range sp.Cursors() {
			if !c.InUse {
				n += c.Backlog.Bytes
			}
		}
		return float64(n)
	})
	m.set.NewGauge("sluice_idempotency_keys", func() float64 { n, _ := a.idem.stats(); return float64(n) })
	m.set.NewGauge("sluice_idempotency_evicted_total", func() float64 { _, e := a.idem.stats(); return float64(e + a.idemSt.evicted()) })
	m.set.NewGauge("sluice_idempotency_copy_failures_total", func() float64 { return float64(a.idemSt.copyFailed.Load()) })
	m.set.NewGauge("sluice_idempotency_index_bytes", func() float64 { return float64(a.idemSt.sp.Stats().BacklogBytes) })
	m.set.NewGauge("sluice_deadletters_discarded_total", func() float64 { return float64(a.dl.sp.Stats().Dropped) })
	m.set.NewGauge("sluice_deadletters_bytes", func() float64 { return float64(a.dl.sp.Stats().BacklogBytes) })
	m.set.NewGauge("sluice_deadletters_forgotten_total", func() float64 { return float64(a.dl.forgottenTotal()) })
	for _, f := range a.fwds {
		l := fmt.Sprintf(`{sink=%q}`, f.spec.Name)
		m.set.NewGauge("sluice_spool_backlog_bytes"+l, func() float64 { return float64(f.cursor.BacklogBytes()) })
		m.set.NewGauge("sluice_spool_backlog_messages"+l, func() float64 { return float64(f.cursor.Backlog().Records) })
		m.set.NewGauge("sluice_spool_backlog_oldest_seconds"+l, func() float64 {
			if o := f.cursor.Backlog().Oldest; !o.IsZero() {
				return time.Since(o).Seconds()
			}
			return 0
		})
		m.set.NewGauge("sluice_sink_failing"+l, func() float64 { return b2f(f.isFailing()) })
		m.set.NewGauge("sluice_sink_held_bytes"+l, func() float64 { return float64(f.heldBytes()) })
		// Drops by the spool's drop_oldest and by the sink's own backlog cap.
		m.set.NewGauge("sluice_dropped_total"+l, func() float64 { return float64(f.cursor.DroppedTotal()) })
	}
}
