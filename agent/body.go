package agent

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// MaxInflightBytes bounds the memory request bodies take, counted before
// it is taken:
//
//   - When a request's headers have arrived (fasthttp's HeaderReceived,
//     before a byte of the body is read), its Content-Length is reserved
//     — MaxRequestBytes for a chunked body, trimmed to its real size once
//     read. A body that does not fit what is left is not read: 503
//     spool_full and the connection closed (417 for Expect: 100-continue,
//     so the client sends nothing). A Content-Length over MaxRequestBytes
//     is 413 from the headers alone, as before.
//   - A gzip body's expansion is reserved as it is decompressed, capped at
//     MaxRequestBytes (413 above it, 503 past the budget).
//   - The reservation is released when the handler returns — earlier once
//     the body is spooled and the reply waits for delivery — or by the
//     error handler when reading the body failed. A reservation no handler
//     claimed within ReadTimeout + 5 s (a connection dropped in a way that
//     reaches neither) is released by a sweep.
//
// Not counted: fasthttp's per-connection read buffer
// (SLUICE_MAX_HEADER_BYTES each, bounded by SLUICE_MAX_CONNECTIONS).

// headerRes is the reservation made for one request at header time, keyed
// by its header (the RequestCtx's, stable while the request is served).
type headerRes struct {
	n       int64
	refused bool // did not fit: answer 503 spool_full
	at      time.Time
}

// bodyRes is the request's reserved bytes, held by the handler.
type bodyRes struct{ n int64 }

const bodyKey = "sluice.body"

var errInflight = errors.New("too many request bytes in flight")

// reservations is the header-time reservations not yet claimed.
type reservations struct {
	m         sync.Map // *fasthttp.RequestHeader -> *headerRes
	lastSweep atomic.Int64
}

func (a *Agent) reserve(n int64) bool {
	if a.inflight.Add(n) > a.opts.MaxInflightBytes {
		a.inflight.Add(-n)
		return false
	}
	return true
}

// headerReceived reserves the body of a request whose headers arrived.
func (a *Agent) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	a.sweepReservations()
	if old, ok := a.res.m.LoadAndDelete(h); ok { // previous request on this connection, unclaimed
		a.inflight.Add(-old.(*headerRes).n)
	}
	cl := h.ContentLength()
	var n int64
	switch {
	case cl > a.opts.MaxRequestBytes, cl == 0, cl == -2: // too large (413 below) or no body
		return fasthttp.RequestConfig{}
	case cl > 0:
		n = int64(cl)
	default: // chunked: at most MaxRequestBytes
		n = int64(a.opts.MaxRequestBytes)
	}
	if !a.reserve(n) {
		a.res.m.Store(h, &headerRes{refused: true, at: time.Now()})
		return fasthttp.RequestConfig{MaxRequestBodySize: 1} // not read: ErrBodyTooLarge
	}
	a.res.m.Store(h, &headerRes{n: n, at: time.Now()})
	return fasthttp.RequestConfig{}
}

// continueHandler answers Expect: 100-continue: a body refused for the
// in-flight budget at header time is not sent at all (417). (One over
// MaxRequestBytes gets 100 Continue and at once 413, as fasthttp answers.)
func (a *Agent) continueHandler(h *fasthttp.RequestHeader) bool {
	if r, ok := a.res.m.Load(h); ok && r.(*headerRes).refused {
		a.res.m.Delete(h)
		return false
	}
	return true
}

// claim takes over the header-time reservation of the request: the bytes
// the handler now holds, and whether the body was refused.
func (a *Agent) claim(ctx *fasthttp.RequestCtx) (n int64, refused bool) {
	r, ok := a.res.m.LoadAndDelete(&ctx.Request.Header)
	if !ok {
		return 0, false
	}
	hr := r.(*headerRes)
	return hr.n, hr.refused
}

// bodyFailed releases the reservation of a request whose body could not be
// read, and reports whether it had been refused for the in-flight budget.
func (a *Agent) bodyFailed(ctx *fasthttp.RequestCtx) (refused bool) {
	n, refused := a.claim(ctx)
	a.inflight.Add(-n)
	return refused
}

func (a *Agent) sweepReservations() {
	now := time.Now()
	last := a.res.lastSweep.Load()
	if now.UnixNano()-last < int64(time.Second) || !a.res.lastSweep.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	stale := now.Add(-a.opts.ReadTimeout - 5*time.Second)
	a.res.m.Range(func(k, v any) bool {
		if r := v.(*headerRes); r.at.Before(stale) {
			if _, ok := a.res.m.LoadAndDelete(k); ok {
				a.inflight.Add(-r.n)
			}
		}
		return true
	})
}

// holdBody claims the request's reservation for the handler, trimmed to
// the body's real size; false: the body was refused for the budget.
func (a *Agent) holdBody(ctx *fasthttp.RequestCtx, b *bodyRes) bool {
	n, refused := a.claim(ctx)
	if refused {
		return false
	}
	if real := int64(len(ctx.Request.Body())); real < n { // chunked: reserved at the maximum
		a.inflight.Add(real - n)
		n = real
	}
	b.n = n
	return true
}

func (a *Agent) releaseBodyOf(b *bodyRes) {
	a.inflight.Add(-b.n)
	b.n = 0
}

// msgCost is the memory of one decoded message besides its bytes (which
// the body holds): NDJSON reserves it as lines are split.
const msgCost = int64(unsafe.Sizeof(Msg{}))

// holdMore reserves n more bytes in MaxInflightBytes for the request being
// handled: 503 spool_full while other requests hold the budget, 413 when
// the request alone would need more than all of it.
func (a *Agent) holdMore(ctx *fasthttp.RequestCtx, n int64) *apiError {
	b, ok := ctx.UserValue(bodyKey).(*bodyRes)
	if !ok {
		return nil // not from the ingest handler (tests)
	}
	if b.n+n > a.opts.MaxInflightBytes {
		return errorf(http.StatusRequestEntityTooLarge, "too_large",
			"the request's messages need more than SLUICE_MAX_INFLIGHT_BYTES (%d bytes) in memory; send fewer per request", a.opts.MaxInflightBytes)
	}
	if !a.reserve(n) {
		return errorf(http.StatusServiceUnavailable, "spool_full", "%v", errInflight)
	}
	b.n += n
	return nil
}

// releaseBody releases the request's body early: the request must not use
// it afterwards.
func (a *Agent) releaseBody(ctx *fasthttp.RequestCtx) {
	if b, ok := ctx.UserValue(bodyKey).(*bodyRes); ok {
		ctx.Request.ResetBody()
		a.releaseBodyOf(b)
	}
}

// readReserved reads r up to limit bytes (errTooLarge past it), reserving
// each part of the buffer before it is filled.
func (a *Agent) readReserved(b *bodyRes, r io.Reader, limit int) ([]byte, error) {
	const chunk = 32 << 10
	var dst []byte
	for {
		if len(dst) > limit {
			return dst, errTooLarge
		}
		if cap(dst)-len(dst) < chunk {
			// Grow by half (copies stay linear overall), reserved first.
			grow := max(chunk, cap(dst)/2)
			if !a.reserve(int64(grow)) {
				return dst, errInflight
			}
			b.n += int64(grow)
			nb := make([]byte, len(dst), cap(dst)+grow)
			copy(nb, dst)
			dst = nb
		}
		n, err := r.Read(dst[len(dst):min(cap(dst), len(dst)+chunk)])
		dst = dst[:len(dst)+n]
		if errors.Is(err, io.EOF) {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

var errTooLarge = errors.New("too large")

// decodeBody replaces a gzip request body (Content-Encoding: gzip, as the
// HTTP sink of another sluice sends) by its content, reserved as it
// expands and capped at MaxRequestBytes, so that a small bomb can neither
// expand without limit nor past the in-flight budget.
func (a *Agent) decodeBody(ctx *fasthttp.RequestCtx, b *bodyRes) *apiError {
	ce := ctx.Request.Header.ContentEncoding()
	switch {
	case len(ce) == 0 || bytes.EqualFold(ce, []byte("identity")):
		return nil
	case !bytes.EqualFold(ce, []byte("gzip")):
		return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Encoding %q (gzip or identity only)", ce)
	}
	zr, err := gzip.NewReader(bytes.NewReader(ctx.PostBody()))
	if err != nil {
		return errorf(http.StatusBadRequest, "bad_request", "gzip body: %v", err)
	}
	plain, err := a.readReserved(b, zr, a.opts.MaxRequestBytes)
	switch {
	case errors.Is(err, errTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "too_large", "decompressed body over %d bytes", a.opts.MaxRequestBytes)
	case errors.Is(err, errInflight):
		return errorf(http.StatusServiceUnavailable, "spool_full", "%v", errInflight)
	case err != nil:
		return errorf(http.StatusBadRequest, "bad_request", "gzip body: %v", err)
	}
	ctx.Request.SetBodyRaw(plain)
	ctx.Request.Header.Del("Content-Encoding")
	return nil
}

// readDecodeBody takes over the body's reservation and decodes it, after
// the request was authorized; false: it answered the request.
func (a *Agent) readDecodeBody(ctx *fasthttp.RequestCtx) bool {
	b := ctx.UserValue(bodyKey).(*bodyRes) // route runs under handleIngest, which sets it
	var e *apiError
	if !a.holdBody(ctx, b) {
		ctx.SetConnectionClose()
		e = errorf(http.StatusServiceUnavailable, "spool_full", "%v", errInflight)
	} else {
		e = a.decodeBody(ctx, b)
	}
	if e != nil {
		a.replyBodyError(ctx, e)
		return false
	}
	return true
}

// replyBodyError answers an error of the body: native, but the in-flight
// back-pressure (503 spool_full) in the REST Proxy's shape on its paths,
// as it answered when the check ran in accept.
func (a *Agent) replyBodyError(ctx *fasthttp.RequestCtx, e *apiError) {
	p := string(ctx.Path())
	media := ""
	switch {
	case strings.HasPrefix(p, "/topics/"):
		media = rpV2Response
	case p == "/v3/clusters" || strings.HasPrefix(p, "/v3/clusters/"):
		media = rpV3Media
	}
	if media == "" || e.code != "spool_full" {
		a.replyError(ctx, e)
		return
	}
	a.m.rejected(e.code)
	ctx.Response.Header.Set("Retry-After", "1")
	rpReplyError(ctx, media, rpFromNative(e))
}
