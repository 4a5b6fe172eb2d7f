package agent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/sluiceio/sluice/internal/jsonenc"
	"github.com/sluiceio/sluice/spool"
)

// The pull API, on the ingest listener (same auth, same error shapes):
//
//	POST /v1/queues/{queue}/pull    {"max":10,"wait":"5s","visibility":"30s"}
//	POST /v1/queues/{queue}/ack     {"receipts":[...]}
//	POST /v1/queues/{queue}/nack    {"receipts":[...],"delay":"10s"}
//	POST /v1/queues/{queue}/extend  {"receipts":[...],"visibility":"60s"}

// duration is a JSON duration: a Go duration string ("5s", "1m30s").
type duration struct {
	d   time.Duration
	set bool
}

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`a duration string such as "5s" expected`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New(`a duration string such as "5s" expected`)
	}
	d.d, d.set = v, true
	return nil
}

type queueRequest struct {
	Max        *int      `json:"max"`
	Wait       duration  `json:"wait"`
	Visibility duration  `json:"visibility"`
	Delay      duration  `json:"delay"`
	Receipts   *[]string `json:"receipts"`
}

// maxReceipts bounds the receipts of one ack, nack or extend.
const maxReceipts = 1000

// routeQueues serves /v1/queues/{queue}/{op}.
func (a *Agent) routeQueues(ctx *fasthttp.RequestCtx, rest, method string) *apiError {
	name, op, _ := strings.Cut(rest, "/")
	var q *queue
	for _, x := range a.queues {
		if x.spec.Name == name {
			q = x
		}
	}
	if q == nil {
		return errorf(http.StatusNotFound, "not_found", "no queue %q", name)
	}
	switch op {
	case "pull", "ack", "nack", "extend":
	default:
		return errorf(http.StatusNotFound, "not_found", "no such queue operation %q (pull, ack, nack, extend)", op)
	}
	if method != http.MethodPost {
		return methodNotAllowed(ctx, "POST")
	}
	var req queueRequest
	// JSON's whitespace only: bytes.TrimSpace would also take \v, \f and
	// Unicode spaces around a document, which make it malformed.
	if body := bytes.Trim(ctx.PostBody(), " \t\r\n"); len(body) > 0 {
		// The body is JSON whatever its Content-Type says (curl -d sends
		// application/x-www-form-urlencoded).
		// A body with more after its document is malformed, refused
		// before anything takes effect.
		if err := decodeQueueRequest(body, &req); err != nil {
			return errorf(http.StatusBadRequest, "bad_request", "body: %v", err)
		}
	}
	if op == "pull" {
		return q.servePull(ctx, a, &req)
	}
	return q.serveReceipts(ctx, op, &req)
}

func (q *queue) servePull(ctx *fasthttp.RequestCtx, a *Agent, req *queueRequest) *apiError {
	if req.Receipts != nil || req.Delay.set {
		return errorf(http.StatusBadRequest, "bad_request", "pull takes max, wait and visibility")
	}
	max := 1
	if req.Max != nil {
		max = *req.Max
	}
	if max < 1 || max > queueMaxPull {
		return errorf(http.StatusBadRequest, "bad_request", "max must be 1 to %d", queueMaxPull)
	}
	if req.Wait.d < 0 || req.Wait.d > queueMaxWait {
		return errorf(http.StatusBadRequest, "bad_request", "wait must be 0s to %s", queueMaxWait)
	}
	vis := q.spec.Visibility
	if req.Visibility.set {
		vis = req.Visibility.d
		if vis < queueMinVisibility || vis > queueMaxVisibility {
			return errorf(http.StatusBadRequest, "bad_request", "visibility must be %s to %s", queueMinVisibility, queueMaxVisibility)
		}
	}
	got := q.pull(a, max, req.Wait.d, vis)
	size := 16
	for _, l := range got {
		size += leaseSize(l)
	}
	bp, _ := pullBufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	b := slices.Grow((*bp)[:0], size)
	b = append(b, `{"messages":[`...)
	for i, l := range got {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendLease(b, l)
	}
	b = append(b, "]}\n"...)
	ctx.SetStatusCode(http.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(b) // a copy, into fasthttp's pooled buffer
	if cap(b) <= 1<<20 {
		*bp = b
		pullBufs.Put(bp)
	}
	return nil
}

// pullBufs holds the buffers pull replies are rendered in.
var pullBufs sync.Pool

// leaseSize is about what appendLease takes for l (a capacity: escapes
// can take more).
func leaseSize(l lease) int {
	m := &l.e.msg
	n := 160 + len(l.e.id) + len(l.receipt) + len(m.Topic) + 2*len(m.Key) + base64.StdEncoding.EncodedLen(len(m.Value))
	for _, h := range m.Headers {
		n += 16 + 2*(len(h.Key)+len(h.Value))
	}
	return n
}

// pull takes up to max messages, waiting up to wait for the first one. At
// most MaxLongPolls pulls wait at once; others answer at once.
func (q *queue) pull(a *Agent, max int, wait, vis time.Duration) []lease {
	got := q.take(max, vis)
	if len(got) > 0 || wait <= 0 {
		return got
	}
	if a.longPolls.Add(1) > int64(a.opts.MaxLongPolls) {
		a.longPolls.Add(-1)
		q.m.pollsRefused.Inc()
		return nil
	}
	defer a.longPolls.Add(-1)
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		q.mu.Lock()
		ch := q.wake
		q.mu.Unlock()
		if got = q.take(max, vis); len(got) > 0 {
			return got
		}
		select {
		case <-ch:
		case <-t.C:
			return nil
		case <-q.stopPolls:
			return nil
		}
	}
}

// appendLease renders one pulled message: the HTTP sink's message object
// (id, topic, key, value or value_b64, headers) plus receipt, attempt and
// pushed_at. value carries the stored bytes as they are when they are one
// JSON document without surrounding whitespace; anything else is
// value_b64. A key or header value that is not UTF-8 comes as key_b64 or
// headers_b64, as the file sink writes it (jsonenc), so that every byte
// reads back.
func appendLease(b []byte, l lease) []byte {
	m := &l.e.msg
	b = append(b, `{"id":`...)
	b = jsonenc.AppendString(b, l.e.id)
	b = append(b, `,"topic":`...)
	b = jsonenc.AppendString(b, m.Topic)
	b = jsonenc.AppendKey(b, m.Key)
	if isRawJSON(m.Value) {
		b = append(b, `,"value":`...)
		b = append(b, m.Value...)
	} else {
		b = append(b, `,"value_b64":"`...)
		b = base64.StdEncoding.AppendEncode(b, m.Value)
		b = append(b, '"')
	}
	b = jsonenc.AppendHeaders(b, m.Headers)
	b = append(b, `,"receipt":`...)
	b = jsonenc.AppendString(b, l.receipt)
	b = fmt.Appendf(b, `,"attempt":%d,"pushed_at":"`, l.attempt)
	b = time.Unix(0, m.Time).UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// isRawJSON reports whether v can be embedded as a JSON member and read
// back byte for byte, by readers with nesting and number limits too
// (jsonenc.Portable).
func isRawJSON(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	switch v[0] {
	case ' ', '\t', '\r', '\n':
		return false
	}
	switch v[len(v)-1] {
	case ' ', '\t', '\r', '\n':
		return false
	}
	return jsonenc.Portable(v)
}

type staleReceipt struct {
	Receipt string `json:"receipt"`
	Reason  string `json:"reason"`
}

func (q *queue) serveReceipts(ctx *fasthttp.RequestCtx, op string, req *queueRequest) *apiError {
	if req.Max != nil || req.Wait.set || (op != "nack" && req.Delay.set) || (op != "extend" && req.Visibility.set) {
		return errorf(http.StatusBadRequest, "bad_request", "%s takes receipts%s", op, map[string]string{"nack": " and delay", "extend": " and visibility"}[op])
	}
	if req.Receipts == nil || len(*req.Receipts) == 0 || len(*req.Receipts) > maxReceipts {
		return errorf(http.StatusBadRequest, "bad_request", "receipts must list 1 to %d receipts", maxReceipts)
	}
	strs := *req.Receipts
	rs := make([]receipt, len(strs))
	for i, s := range strs {
		r, ok := q.qlog.parseReceipt(s)
		if !ok {
			return errorf(http.StatusBadRequest, "bad_request", "receipt %d is malformed or not of queue %s (nothing was changed)", i, q.spec.Name)
		}
		rs[i] = r
	}
	var out []string
	var err error
	switch op {
	case "ack":
		out, err = q.ack(rs)
	case "nack":
		if req.Delay.d < 0 || req.Delay.d > queueMaxDelay {
			return errorf(http.StatusBadRequest, "bad_request", "delay must be 0s to %s", queueMaxDelay)
		}
		out = q.nack(rs, req.Delay.d)
	case "extend":
		if !req.Visibility.set || req.Visibility.d < queueMinVisibility || req.Visibility.d > queueMaxVisibility {
			return errorf(http.StatusBadRequest, "bad_request", "visibility must be %s to %s", queueMinVisibility, queueMaxVisibility)
		}
		out = q.extend(rs, req.Visibility.d)
	}
	if err != nil {
		return spoolError(err)
	}
	stale := []staleReceipt{}
	n := 0
	for i, why := range out {
		if why == receiptOK {
			n++
		} else {
			stale = append(stale, staleReceipt{Receipt: strs[i], Reason: why})
		}
	}
	writeJSON(ctx, http.StatusOK, map[string]any{pastTenseQ(op): n, "stale": stale})
	return nil
}

func pastTenseQ(op string) string {
	switch op {
	case "ack":
		return "acked"
	case "nack":
		return "nacked"
	}
	return "extended"
}

// queueMetrics are one queue's counters; gauges are computed at scrape
// time (registerQueueMetrics).
type queueMetrics struct {
	delivered, redeliveries, expired, acked, nacked, pollsRefused *metrics.Counter
}

func newQueueMetrics(set *metrics.Set, name string) *queueMetrics {
	l := fmt.Sprintf(`{queue=%q}`, name)
	return &queueMetrics{
		delivered:    set.GetOrCreateCounter("sluice_queue_delivered_total" + l),
		redeliveries: set.GetOrCreateCounter("sluice_queue_redeliveries_total" + l),
		expired:      set.GetOrCreateCounter("sluice_queue_expired_leases_total" + l),
		acked:        set.GetOrCreateCounter("sluice_queue_acked_total" + l),
		nacked:       set.GetOrCreateCounter("sluice_queue_nacked_total" + l),
		pollsRefused: set.GetOrCreateCounter("sluice_queue_long_polls_refused_total" + l),
	}
}

func (a *Agent) registerQueueMetrics() {
	set := a.m.set
	for _, q := range a.queues {
		l := fmt.Sprintf(`{queue=%q}`, q.spec.Name)
		set.NewGauge("sluice_queue_depth"+l, func() float64 { return float64(q.cursor.Backlog().Records) })
		set.NewGauge("sluice_queue_ready"+l, func() float64 { r, _ := q.counts(); return float64(r) })
		set.NewGauge("sluice_queue_in_flight"+l, func() float64 { _, f := q.counts(); return float64(f) })
		set.NewGauge("sluice_queue_oldest_seconds"+l, func() float64 {
			if o := q.cursor.Backlog().Oldest; !o.IsZero() {
				return time.Since(o).Seconds()
			}
			return 0
		})
		set.NewGauge("sluice_spool_backlog_bytes{sink=\""+q.spec.Name+"\"}", func() float64 { return float64(q.cursor.BacklogBytes()) })
		set.NewGauge("sluice_dropped_total{sink=\""+q.spec.Name+"\"}", func() float64 { return float64(q.cursor.DroppedTotal()) })
	}
}

// QueueStats is one queue in Stats.
type QueueStats struct {
	Name            string      `json:"name"`
	Topics          []string    `json:"topics"`
	BacklogMessages uint64      `json:"backlog_messages"` // spool records not acknowledged by the queue's cursor (an upper bound of its depth)
	BacklogBytes    int64       `json:"backlog_bytes"`
	Ready           int         `json:"ready"`     // read into memory and not leased (available, delayed or waiting behind their key)
	InFlight        int         `json:"in_flight"` // leased
	Oldest          time.Time   `json:"oldest,omitzero"`
	Acked           uint64      `json:"acked_seq"`
	Dropped         uint64      `json:"dropped"`
	Redeliveries    uint64      `json:"redeliveries"`
	ExpiredLeases   uint64      `json:"expired_leases"`
	Log             spool.Stats `json:"log"` // the queue's own log of deliveries and acknowledgements: its commits and fsyncs
}

func (a *Agent) queueStats() []QueueStats {
	var out []QueueStats
	for _, q := range a.queues {
		b := q.cursor.Backlog()
		r, f := q.counts()
		out = append(out, QueueStats{
			Name: q.spec.Name, Topics: q.spec.Topics, BacklogMessages: b.Records, BacklogBytes: b.Bytes,
			Ready: r, InFlight: f, Oldest: b.Oldest, Acked: q.cursor.Acked(), Dropped: q.cursor.DroppedTotal(),
			Redeliveries: q.m.redeliveries.Get(), ExpiredLeases: q.m.expired.Get(), Log: q.spec.Log.Stats(),
		})
	}
	return out
}

// isQueue reports whether name is a configured queue.
func (a *Agent) isQueue(name string) bool {
	for _, q := range a.queues {
		if q.spec.Name == name {
			return true
		}
	}
	return false
}

// queueTakes reports whether some queue's topic globs match topic (the
// routing half of queueTargets, without the backlog caps).
func (a *Agent) queueTakes(topic string) bool {
	for _, q := range a.queues {
		if matchTopic(q.spec.Topics, topic) {
			return true
		}
	}
	return false
}

// queueTargets appends the queues whose topic globs match topic, refusing
// the push when one of them is at its own backlog cap with policy reject.
func (a *Agent) queueTargets(topic string, sinks []string) ([]string, *apiError) {
	for _, q := range a.queues {
		if !matchTopic(q.spec.Topics, topic) {
			continue
		}
		if q.spec.MaxBacklogBytes > 0 && q.spec.BacklogPolicy == "reject" && q.cursor.BacklogBytes() >= q.spec.MaxBacklogBytes {
			return nil, errorf(http.StatusServiceUnavailable, "spool_full", "backlog of queue %s is at its cap", q.spec.Name)
		}
		sinks = append(sinks, q.spec.Name)
	}
	return sinks, nil
}

// queueStatuses adds the queues among targets to a request record.
func (a *Agent) queueStatuses(sid spool.ID, targets []string, dead map[string]dlInfo, out map[string]SinkStatus) {
	for _, q := range a.queues {
		if targets != nil && !containsString(targets, q.spec.Name) {
			continue
		}
		if targets == nil && sid.Seq <= q.cursor.Born() {
			continue // a record gone from the spool, older than the queue
		}
		if d, ok := dead[q.spec.Name]; ok {
			out[q.spec.Name] = SinkStatus{Status: "failed", Reason: d.reason, Error: d.err}
			continue
		}
		ss := SinkStatus{Status: q.seqState(sid)}
		switch {
		case a.sp.Lost(sid) && (ss.Status == "delivered" || ss.Status == "unknown"):
			// Passed unread, or after its ack: never a false delivered.
			ss = lostStatus()
		case ss.Status == "unknown":
			ss = dropForgottenStatus()
		}
		if ss.Status == "delivered" && a.dl.mayHaveForgotten(q.spec.Name, sid.Seq) {
			// A dead letter of it may have been forgotten: never a false
			// delivered (deadletter_forgotten.go), as for sinks.
			ss = forgottenStatus()
		}
		out[q.spec.Name] = ss
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// decodeQueueRequest decodes a pull, ack, nack or extend body as
// decodeStrict does. Bodies of the plain shape clients send (lower-case
// known keys, each once; ASCII strings without escapes; max as digits) are
// read by hand, without encoding/json's reflection (5 % of the agent's CPU
// under bench/queues); anything else, and every error, goes to
// decodeStrict, so that what is accepted and the errors are the same.
func decodeQueueRequest(body []byte, req *queueRequest) error {
	if fastQueueRequest(body, req) {
		return nil
	}
	*req = queueRequest{}
	return decodeStrict(body, req)
}

func fastQueueRequest(b []byte, req *queueRequest) bool {
	i := 0
	ws := func() {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
			i++
		}
	}
	str := func() ([]byte, bool) { // a plain string: printable ASCII, no escapes
		if i >= len(b) || b[i] != '"' {
			return nil, false
		}
		for j := i + 1; j < len(b); j++ {
			switch c := b[j]; {
			case c == '"':
				s := b[i+1 : j]
				i = j + 1
				return s, true
			case c < 0x20 || c > 0x7e || c == '\\':
				return nil, false
			}
		}
		return nil, false
	}
	dur := func(d *duration) bool {
		s, ok := str()
		if !ok || d.set {
			return false
		}
		v, err := time.ParseDuration(string(s))
		if err != nil {
			return false
		}
		d.d, d.set = v, true
		return true
	}
	ws()
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i++
	ws()
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			ws()
			key, ok := str()
			if !ok {
				return false
			}
			ws()
			if i >= len(b) || b[i] != ':' {
				return false
			}
			i++
			ws()
			switch string(key) {
			case "max":
				j := i
				for i < len(b) && b[i] >= '0' && b[i] <= '9' {
					i++
				}
				if req.Max != nil || i == j || i-j > 9 || (b[j] == '0' && i-j > 1) {
					return false
				}
				n := 0
				for _, c := range b[j:i] {
					n = n*10 + int(c-'0')
				}
				req.Max = &n
			case "wait":
				ok = dur(&req.Wait)
			case "visibility":
				ok = dur(&req.Visibility)
			case "delay":
				ok = dur(&req.Delay)
			case "receipts":
				if req.Receipts != nil || i >= len(b) || b[i] != '[' {
					return false
				}
				i++
				rs := []string{}
				ws()
				if i < len(b) && b[i] == ']' {
					i++
				} else {
					for {
						ws()
						s, ok := str()
						if !ok {
							return false
						}
						rs = append(rs, string(s))
						ws()
						if i >= len(b) {
							return false
						}
						if b[i] == ']' {
							i++
							break
						}
						if b[i] != ',' {
							return false
						}
						i++
					}
				}
				req.Receipts = &rs
			default:
				return false
			}
			if !ok {
				return false
			}
			ws()
			if i >= len(b) {
				return false
			}
			if b[i] == '}' {
				i++
				break
			}
			if b[i] != ',' {
				return false
			}
			i++
		}
	}
	ws()
	return i == len(b)
}
