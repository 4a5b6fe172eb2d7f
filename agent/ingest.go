package agent

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluiceio/sluice/internal/jsonenc"
	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/spool"
)

func (a *Agent) newIngestServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                       a.handleIngest,
		ErrorHandler:                  a.transportError,
		Name:                          "sluice",
		MaxRequestBodySize:            a.opts.MaxRequestBytes,
		HeaderReceived:                a.headerReceived, // reserves MaxInflightBytes before the body is read (body.go)
		ContinueHandler:               a.continueHandler,
		ReadBufferSize:                a.opts.MaxHeaderBytes,
		ReadTimeout:                   a.opts.ReadTimeout,
		WriteTimeout:                  a.opts.WriteTimeout,
		IdleTimeout:                   a.opts.IdleTimeout,
		Concurrency:                   a.opts.MaxConnections,
		DisableHeaderNamesNormalizing: true, // Sluice-Header-<name> keeps the name as sent
		NoDefaultServerHeader:         true,
		CloseOnShutdown:               true,
	}
}

// transportError answers requests fasthttp rejects before the handler.
func (a *Agent) transportError(ctx *fasthttp.RequestCtx, err error) {
	var e *apiError
	if a.bodyFailed(ctx) && errors.Is(err, fasthttp.ErrBodyTooLarge) { // body.go
		a.replyBodyError(ctx, errorf(http.StatusServiceUnavailable, "spool_full", "%v", errInflight))
		ctx.SetConnectionClose()
		return
	}
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		e = errorf(http.StatusRequestEntityTooLarge, "too_large", "request body over %d bytes", a.opts.MaxRequestBytes)
	case strings.Contains(err.Error(), "small read buffer"), strings.Contains(err.Error(), "too big"):
		e = errorf(http.StatusRequestHeaderFieldsTooLarge, "headers_too_large", "request headers over %d bytes", a.opts.MaxHeaderBytes)
	case isTimeout(err):
		e = errorf(http.StatusRequestTimeout, "timeout", "request not received in time")
	default:
		e = errorf(http.StatusBadRequest, "bad_request", "malformed HTTP request: %v", err)
	}
	a.replyError(ctx, e)
	ctx.SetConnectionClose()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (a *Agent) replyError(ctx *fasthttp.RequestCtx, e *apiError) {
	a.m.rejected(e.code)
	if e.status == http.StatusServiceUnavailable {
		ctx.Response.Header.Set("Retry-After", "1")
	}
	writeJSON(ctx, e.status, map[string]string{"error": e.msg, "code": e.code})
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, _ := json.Marshal(v)
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}

// writeIDs answers 202 {"ids":[...]}, as writeJSON would, without
// reflection: it is every push's reply.
func writeIDs(ctx *fasthttp.RequestCtx, ids []string) {
	n := 10
	for _, id := range ids {
		n += len(id) + 3
	}
	b := make([]byte, 0, n)
	b = append(b, `{"ids":[`...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonenc.AppendString(b, id)
	}
	b = append(b, "]}\n"...)
	ctx.SetStatusCode(http.StatusAccepted)
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(b)
}

func (a *Agent) handleIngest(ctx *fasthttp.RequestCtx) {
	t0 := time.Now()
	b := &bodyRes{}
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("panic in ingest handler", "panic", r)
			a.replyError(ctx, errorf(http.StatusInternalServerError, "io_error", "internal error"))
		}
		a.bodyFailed(ctx) // a reservation route did not claim (refused before the body was used)
		a.releaseBodyOf(b)
		a.m.requestDuration.UpdateDuration(t0)
	}()
	ctx.SetUserValue(bodyKey, b)
	if e := a.route(ctx); e != nil {
		a.replyError(ctx, e)
	}
}

func (a *Agent) route(ctx *fasthttp.RequestCtx) *apiError {
	if ctx.Request.Header.Len() > a.opts.MaxHeaders {
		ctx.SetConnectionClose()
		return errorf(http.StatusRequestHeaderFieldsTooLarge, "headers_too_large", "more than %d headers", a.opts.MaxHeaders)
	}
	if e := a.authorize(ctx); e != nil {
		return e
	}
	if !a.readDecodeBody(ctx) {
		return nil // answered
	}
	p := string(ctx.Path())
	method := string(ctx.Method())
	if e, handled := a.routeRestProxy(ctx, p, method); handled {
		return e
	}
	switch {
	case strings.HasPrefix(p, "/v1/topics/"):
		if method != http.MethodPost {
			return methodNotAllowed(ctx, "POST")
		}
		return a.pushTopic(ctx, strings.TrimPrefix(p, "/v1/topics/"))
	case p == "/v1/messages":
		if method != http.MethodPost {
			return methodNotAllowed(ctx, "POST")
		}
		if !isJSON(ctx.Request.Header.ContentType()) {
			return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "/v1/messages takes application/json")
		}
		msgs, e := parseBatch(ctx.PostBody(), a.opts.MaxMessageBytes, func(n int64) *apiError { return a.holdMore(ctx, n) })
		if e != nil {
			return e
		}
		return a.push(ctx, msgs)
	case strings.HasPrefix(p, "/v1/messages/"):
		if method != http.MethodGet {
			return methodNotAllowed(ctx, "GET")
		}
		writeJSON(ctx, http.StatusOK, a.status(strings.TrimPrefix(p, "/v1/messages/")))
		return nil
	case strings.HasPrefix(p, "/v1/queues/"):
		return a.routeQueues(ctx, strings.TrimPrefix(p, "/v1/queues/"), method)
	case strings.HasPrefix(p, "/v1/control/"):
		return a.control(ctx, strings.TrimPrefix(p, "/v1/control/"), method)
	}
	return errorf(http.StatusNotFound, "not_found", "no such endpoint %s", p)
}

func methodNotAllowed(ctx *fasthttp.RequestCtx, allow string) *apiError {
	ctx.Response.Header.Set("Allow", allow)
	return errorf(http.StatusMethodNotAllowed, "method_not_allowed", "use %s", allow)
}

func isJSON(ct []byte) bool {
	mt, _, _ := bytes.Cut(ct, []byte{';'})
	return bytes.EqualFold(bytes.TrimSpace(mt), []byte("application/json"))
}

func (a *Agent) authorize(ctx *fasthttp.RequestCtx) *apiError {
	if a.opts.AuthToken == "" {
		return nil
	}
	got := peekHeader(ctx, "Authorization")
	want := "Bearer " + a.opts.AuthToken
	if subtle.ConstantTimeCompare(got, []byte(want)) != 1 {
		return errorf(http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token")
	}
	return nil
}

// peekHeader finds a request header case-insensitively (names are not
// normalised so that Sluice-Header-<name> keeps its case).
func peekHeader(ctx *fasthttp.RequestCtx, name string) []byte {
	var v []byte
	for k, val := range ctx.Request.Header.All() {
		if v == nil && equalFold(k, name) {
			v = val
		}
	}
	return v
}

// equalFold is strings.EqualFold for ASCII header names, without turning
// the []byte into a string.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

const headerPrefix = "sluice-header-"

// pushTopic handles POST /v1/topics/{topic}: the body is one message, or
// one per line with Content-Type application/x-ndjson.
func (a *Agent) pushTopic(ctx *fasthttp.RequestCtx, topic string) *apiError {
	if !sink.ValidTopic(topic) {
		return errorf(http.StatusBadRequest, "bad_topic", "invalid topic %q (1-249 of [a-zA-Z0-9._-])", topic)
	}
	var key []byte
	var headers []sink.Header
	var badHeader *apiError
	for k, v := range ctx.Request.Header.All() {
		switch {
		case equalFold(k, "Sluice-Key"):
			key = append([]byte{}, v...)
		case len(k) > len(headerPrefix) && equalFold(k[:len(headerPrefix)], headerPrefix):
			hn := string(k[len(headerPrefix):])
			if strings.EqualFold(hn, sink.IDHeader) {
				badHeader = errorf(http.StatusBadRequest, "bad_request", "header %s is set by sluice", sink.IDHeader)
			}
			headers = append(headers, sink.Header{Key: hn, Value: append([]byte{}, v...)})
		}
	}
	if badHeader != nil {
		return badHeader
	}
	body := ctx.PostBody()
	ct := ctx.Request.Header.ContentType()
	mt, _, _ := bytes.Cut(ct, []byte{';'})
	newMsg := func(v []byte) Msg {
		return Msg{Topic: topic, Key: key, Headers: headers, Value: v, Partition: sink.NoPartition}
	}
	var msgs []Msg
	if bytes.EqualFold(bytes.TrimSpace(mt), []byte("application/x-ndjson")) {
		e := splitNDJSON(body, func(line []byte) *apiError {
			if len(line) > a.opts.MaxMessageBytes {
				return errorf(http.StatusRequestEntityTooLarge, "too_large", "line %d: %d bytes > %d", len(msgs)+1, len(line), a.opts.MaxMessageBytes)
			}
			if len(msgs) == cap(msgs) {
				// A message costs a Msg besides its bytes: 100 times a
				// two-byte line. Reserved before it is taken, as bodies are.
				grow := max(cap(msgs), 64)
				if e := a.holdMore(ctx, int64(grow)*msgCost); e != nil {
					return e
				}
				msgs = slices.Grow(msgs, grow)
			}
			msgs = append(msgs, newMsg(line))
			return nil
		})
		if e != nil {
			return e
		}
		if len(msgs) == 0 {
			return errorf(http.StatusBadRequest, "bad_request", "NDJSON body has no message")
		}
	} else {
		if len(body) > a.opts.MaxMessageBytes {
			return errorf(http.StatusRequestEntityTooLarge, "too_large", "message of %d bytes > %d", len(body), a.opts.MaxMessageBytes)
		}
		msgs = []Msg{newMsg(body)}
	}
	return a.push(ctx, msgs)
}

// push routes, spools and answers: 202 {"ids": [...]}. A request is
// all-or-nothing: a rejected request spools nothing.
func (a *Agent) push(ctx *fasthttp.RequestCtx, msgs []Msg) *apiError {
	ackDelivered, timeout, e := a.ackMode(ctx, false)
	if e != nil {
		return e
	}
	acc, e := a.accept(ctx, msgs)
	if e != nil {
		return e
	}
	if acc.replay {
		ctx.Response.Header.Set("Sluice-Idempotent-Replay", "true")
	}
	if !ackDelivered {
		writeIDs(ctx, acc.IDs)
		return nil
	}
	a.releaseBody(ctx) // spooled: the wait holds no body bytes
	status := a.waitDelivered(acc, timeout)
	writeJSON(ctx, http.StatusAccepted, map[string]any{"ids": acc.IDs, "status": status})
	return nil
}

// ackMode reads Sluice-Ack (spooled or delivered; def when absent) and
// Sluice-Timeout (default AckTimeout, capped at AckTimeoutMax).
func (a *Agent) ackMode(ctx *fasthttp.RequestCtx, def bool) (delivered bool, timeout time.Duration, e *apiError) {
	delivered = def
	if v := peekHeader(ctx, "Sluice-Ack"); len(v) > 0 {
		switch strings.ToLower(string(v)) {
		case "delivered":
			delivered = true
		case "spooled":
			delivered = false
		default:
			return false, 0, errorf(http.StatusBadRequest, "bad_request", "Sluice-Ack must be spooled or delivered")
		}
	}
	timeout = a.opts.AckTimeout
	if v := peekHeader(ctx, "Sluice-Timeout"); len(v) > 0 {
		d, err := parseTimeout(string(v))
		if err != nil {
			return false, 0, errorf(http.StatusBadRequest, "bad_request", "Sluice-Timeout: %v", err)
		}
		timeout = min(d, a.opts.AckTimeoutMax)
	}
	return delivered, timeout, nil
}

// targets names the sinks whose topic globs match topic, refusing the push
// when one of them is at its own backlog cap with policy reject.
func (a *Agent) targets(topic string) ([]string, *apiError) {
	var sinks []string
	for _, f := range a.fwds {
		if !matchTopic(f.spec.Topics, topic) {
			continue
		}
		if f.spec.MaxBacklogBytes > 0 && f.spec.BacklogPolicy == "reject" && f.cursor.BacklogBytes() >= f.spec.MaxBacklogBytes {
			return nil, errorf(http.StatusServiceUnavailable, "spool_full", "backlog of sink %s is at its cap", f.spec.Name)
		}
		sinks = append(sinks, f.spec.Name)
	}
	sinks, e := a.queueTargets(topic, sinks)
	if e != nil {
		return nil, e
	}
	if len(sinks) == 0 {
		return nil, errorf(http.StatusBadRequest, "no_route", "no sink takes topic %q", topic)
	}
	return sinks, nil
}

// accepted is what accept spooled.
type accepted struct {
	IDs     []string   // one sluice-id per message, in order
	SIDs    []spool.ID // spool positions; nil for an idempotent replay
	Targets [][]string // target sinks per message; nil for a replay
	replay  bool       // an Idempotency-Key repeat: nothing was spooled
}

// accept is the common path of every push API: drain and in-flight
// checks, the callback guard, routing and per-sink caps, Idempotency-Key,
// then one spool append for the whole request (all-or-nothing). It sets
// each message's Time, Sinks and Callback.
func (a *Agent) accept(ctx *fasthttp.RequestCtx, msgs []Msg) (accepted, *apiError) {
	if a.draining.Load() && !a.opts.DrainAccept {
		return accepted{}, errorf(http.StatusServiceUnavailable, "shutting_down", "sluice is shutting down")
	}
	// The body's bytes were reserved in MaxInflightBytes as it was read (body.go).

	var callback string
	if v := peekHeader(ctx, "Sluice-Callback"); v != nil {
		callback = string(v)
		if err := a.guard.checkURL(callback); err != nil {
			return accepted{}, errorf(http.StatusBadRequest, "callback_not_allowed", "Sluice-Callback: %v", err)
		}
		a.cb.asked.Store(true) // before the append: see callbacks.skipUnasked
	}

	now := time.Now().UnixNano()
	size := 0
	var lastTopic string
	var lastSinks []string // routes of lastTopic: NDJSON and most batches have one topic
	for i := range msgs {
		m := &msgs[i]
		m.Time = now
		m.Callback = callback
		if i == 0 || m.Topic != lastTopic {
			sinks, e := a.targets(m.Topic)
			if e != nil {
				return accepted{}, e
			}
			lastTopic, lastSinks = m.Topic, sinks
		}
		m.Sinks = lastSinks
		size += encodedSize(m)
	}
	var idemKey string
	var idemE *idemEntry
	var spooled []string // ids once spooled; nil = failed
	finishIdem := false  // the deferred finish records the outcome
	if k := peekHeader(ctx, "Idempotency-Key"); k != nil {
		idemKey = string(k)
		e, stored, prior, aerr := a.idemCheck(ctx, idemKey, len(msgs))
		if aerr != nil {
			return accepted{}, aerr
		}
		if prior != nil {
			return accepted{IDs: prior, replay: true}, nil
		}
		idemE, finishIdem = e, true
		msgs[0].IdemKey, msgs[0].IdemHash = idemKey, stored
		size += len(idemKey) + len(stored) + 20
		defer func() {
			if finishIdem {
				a.idem.finish(idemKey, idemE, spooled)
			}
		}()
	}
	batch := spool.NewBatch(len(msgs), size)
	chained := make([]string, len(msgs)) // kept ids; copied out of the request
	var valueBytes int
	for i := range msgs {
		batch.End(appendMsg(batch.Begin(), &msgs[i]))
		chained[i] = msgs[i].ID
		valueBytes += len(msgs[i].Value)
	}
	// The batch holds the messages now: the body's buffer goes back to
	// fasthttp's pool while the append waits for its fsync, so a request
	// holds its bytes once, not twice. (The reservation stays: it counts
	// the batch now.) msgs' keys, values and headers are gone with it.
	ctx.Request.ResetBody()
	var first spool.ID
	var err error
	if idemE == nil {
		first, err = a.sp.AppendBatch(context.Background(), batch)
	} else {
		var late bool
		first, late, err = a.appendKeyed(batch, idemKey, idemE, chained, valueBytes)
		finishIdem = !late
	}
	if err != nil {
		return accepted{}, spoolError(err)
	}
	acc := accepted{IDs: a.spooled(first, chained, valueBytes), SIDs: make([]spool.ID, len(msgs)), Targets: make([][]string, len(msgs))}
	for i := range msgs {
		acc.SIDs[i], acc.Targets[i] = spool.ID{Epoch: first.Epoch, Seq: first.Seq + uint64(i)}, msgs[i].Sinks
	}
	spooled = acc.IDs
	return acc, nil
}

// spooled returns the ids of messages spooled from first on (chained[i]
// is message i's kept id, or ""), records the chained ones and counts the
// messages.
func (a *Agent) spooled(first spool.ID, chained []string, valueBytes int) []string {
	ids := make([]string, len(chained))
	kept := false
	for i, c := range chained {
		sid := spool.ID{Epoch: first.Epoch, Seq: first.Seq + uint64(i)}
		if c != "" {
			ids[i], kept = c, true
			a.records.setChained(c, sid)
		} else {
			ids[i] = formatID(a.sp.SpoolID(), sid)
		}
	}
	if kept { // before the ack
		if err := a.records.flushKept(); err != nil {
			a.log.Warn("cannot write the kept-id log; these chained ids may read unknown after a restart", "err", err)
		}
	}
	a.m.ingestMessages.Add(len(chained))
	a.m.ingestBytes.Add(valueBytes)
	return ids
}

func parseTimeout(s string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil && n >= 0 {
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errors.New("a duration such as 5s, or seconds")
	}
	return d, nil
}

// waitDelivered holds a Sluice-Ack: delivered reply until every target
// sink resolved every message, or the timeout.
func (a *Agent) waitDelivered(acc accepted, timeout time.Duration) string {
	ids, sids, targets := acc.IDs, acc.SIDs, acc.Targets
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	next := 0 // messages before next are resolved
	status := "delivered"
	for {
		ch := a.records.wait()
		for next < len(ids) {
			var st Status
			if sids != nil {
				st = a.statusOf(sids[next], ids[next], targets[next])
			} else {
				st = a.status(ids[next])
			}
			if st.Status == "pending" || st.Status == "in_flight" || st.Status == "unknown" {
				break // in_flight: leased by a queue's consumer, not resolved yet
			}
			if st.Status != "delivered" && status == "delivered" {
				status = st.Status
			}
			next++
		}
		if next == len(ids) {
			return status
		}
		select {
		case <-ch:
		case <-deadline.C:
			return "pending"
		}
	}
}

func spoolError(err error) *apiError {
	switch {
	case errors.Is(err, spool.ErrFull):
		return errorf(http.StatusServiceUnavailable, "spool_full", "spool is full; retry later")
	case errors.Is(err, spool.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return errorf(http.StatusServiceUnavailable, "spool_timeout", "spool append timed out: outcome unknown, retry with Idempotency-Key")
	case errors.Is(err, spool.ErrClosed):
		return errorf(http.StatusServiceUnavailable, "shutting_down", "sluice is shutting down")
	case errors.Is(err, spool.ErrDiskFull):
		return errorf(http.StatusInsufficientStorage, "disk_full", "spool disk is full")
	case errors.Is(err, spool.ErrTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "too_large", "%v", err)
	}
	return errorf(http.StatusInternalServerError, "io_error", "spool write failed: %v", err)
}

// control serves /v1/control/...: loopback or unix-socket peers with the
// bearer token when one is set, else with the control token (control.go).
func (a *Agent) control(ctx *fasthttp.RequestCtx, op, method string) *apiError {
	if e := a.authorizeControl(ctx); e != nil {
		return e
	}
	if rest, ok := strings.CutPrefix(op, "deadletters"); ok && (rest == "" || rest[0] == '/') {
		return a.deadLetterControl(ctx, strings.TrimPrefix(rest, "/"), method)
	}
	switch op {
	case "drain":
		if method != http.MethodPost {
			return methodNotAllowed(ctx, "POST")
		}
		a.RequestDrain()
		writeJSON(ctx, http.StatusAccepted, a.stats())
		return nil
	}
	return errorf(http.StatusNotFound, "not_found", "no such control operation %q", op)
}
