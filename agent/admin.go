package agent

import (
	"net/http"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/sluiceio/sluice/spool"
)

// The admin listener is read-only: probes, metrics and stats. It never
// depends on a broker or the backlog: a Kafka outage must not take the
// application's pod out of its Service.
func (a *Agent) newAdminServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:               a.handleAdmin,
		Name:                  "sluice-admin",
		ReadTimeout:           5 * time.Second,
		WriteTimeout:          10 * time.Second,
		IdleTimeout:           60 * time.Second,
		MaxRequestBodySize:    4 << 10,
		Concurrency:           256,
		NoDefaultServerHeader: true,
		CloseOnShutdown:       true,
	}
}

func (a *Agent) handleAdmin(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Response.Header.Set("Allow", "GET")
		writeJSON(ctx, http.StatusMethodNotAllowed, map[string]string{"error": "use GET", "code": "method_not_allowed"})
		return
	}
	switch string(ctx.Path()) {
	case "/livez":
		ctx.SetBodyString("ok\n")
	case "/readyz":
		// Ready once the spool is recovered and the listeners are up;
		// not ready while draining (new pushes would be refused).
		if !a.ready.Load() || (a.draining.Load() && !a.opts.DrainAccept) {
			ctx.SetStatusCode(http.StatusServiceUnavailable)
			ctx.SetBodyString("not ready\n")
			return
		}
		ctx.SetBodyString("ok\n")
	case "/metrics":
		ctx.SetContentType("text/plain; version=0.0.4")
		a.opts.Metrics.WritePrometheus(ctx)
		metrics.WriteProcessMetrics(ctx) // go_* and process_*: RSS, heap, GC, fds
	case "/v1/stats":
		writeJSON(ctx, http.StatusOK, a.stats())
	default:
		writeJSON(ctx, http.StatusNotFound, map[string]string{"error": "not found", "code": "not_found"})
	}
}

// Stats is the JSON of /v1/stats (and of `sluice status`).
type Stats struct {
	Version  string       `json:"version"`
	SpoolID  string       `json:"spool_id"`
	Epoch    uint32       `json:"epoch"`
	Ready    bool         `json:"ready"`
	Draining bool         `json:"draining"`
	Spool    spool.Stats  `json:"spool"`
	Sinks    []SinkStats  `json:"sinks"`
	Queues   []QueueStats `json:"queues,omitempty"`
	Orphans  []string     `json:"orphan_cursors,omitempty"`
}

// SinkStats is one sink in Stats.
type SinkStats struct {
	Name            string    `json:"name"`
	Type            string    `json:"type"`
	Topics          []string  `json:"topics"`
	BacklogMessages uint64    `json:"backlog_messages"`
	BacklogBytes    int64     `json:"backlog_bytes"`
	Oldest          time.Time `json:"oldest,omitzero"`
	Failing         bool      `json:"failing"`
	DeadLetterStuck int       `json:"dead_letter_stuck,omitempty"` // lanes held by a dead letter the log does not take
	Acked           uint64    `json:"acked_seq"`
	Dropped         uint64    `json:"dropped"`
}

func (a *Agent) stats() Stats {
	st := Stats{
		Version: a.opts.Version, SpoolID: a.sp.SpoolID(), Epoch: a.sp.Epoch(),
		Ready: a.ready.Load(), Draining: a.draining.Load(), Spool: a.sp.Stats(),
	}
	byName := map[string]*forwarder{}
	for _, f := range a.fwds {
		byName[f.spec.Name] = f
	}
	for _, c := range a.sp.Cursors() {
		f := byName[c.Name]
		if c.Name == callbackCursor || c.Name == idemCopierCursor || a.isQueue(c.Name) {
			continue
		}
		if f == nil {
			st.Orphans = append(st.Orphans, c.Name)
			continue
		}
		st.Sinks = append(st.Sinks, SinkStats{
			Name: c.Name, Type: f.spec.Type, Topics: f.spec.Topics,
			BacklogMessages: c.Backlog.Records, BacklogBytes: c.Backlog.Bytes, Oldest: c.Backlog.Oldest,
			Failing: f.isFailing(), DeadLetterStuck: f.a.dlStuck.count(f.spec.Name), Acked: c.Acked, Dropped: c.Dropped,
		})
	}
	st.Queues = a.queueStats()
	return st
}
