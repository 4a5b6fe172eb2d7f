package httpsink

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluiceio/sluice/sink"
)

const (
	// drainBytes is how much of a response body is read and discarded so
	// the connection can be reused; a longer body closes the connection.
	drainBytes = 64 << 10
	// keepBuffer: a body buffer that grew past this is not kept for the
	// next Write, so one huge batch does not pin its memory.
	keepBuffer = 16 << 20
	// redirectLogEvery limits the redirect hint in the log.
	redirectLogEvery = time.Minute
)

// Writer is the HTTP sink. See the package documentation.
type Writer struct {
	cfg config

	closed    atomic.Bool
	closeOnce sync.Once
	closeCtx  context.Context // done once Close was called
	cancel    context.CancelFunc
	// sem is a one-slot lock held by Write and Close; a channel so that
	// waiting for it honours ctx.
	sem chan struct{}

	// wait sleeps for a Retry-After; a field so that tests can observe it.
	wait func(ctx context.Context, d time.Duration) error

	// Guarded by sem.
	buf       []byte       // the JSON body, reused between Writes
	zbuf      sliceWriter  // the gzipped body, reused between Writes
	zw        *gzip.Writer // nil until the first gzipped Write
	inflight  *body        // the request body of the last Write
	lastHint  time.Time    // last redirect hint logged
	hintCount int          // redirects since lastHint
}

var _ sink.Sink = (*Writer)(nil)

// New returns an HTTP sink posting to opts.URL. It fails only on invalid
// options; it does not contact the upstream.
func New(opts Options) (*Writer, error) {
	cfg, err := opts.config()
	if err != nil {
		return nil, err
	}
	w := &Writer{cfg: cfg, sem: make(chan struct{}, 1)}
	w.closeCtx, w.cancel = context.WithCancel(context.Background())
	w.wait = w.sleep
	return w, nil
}

// Write posts msgs as one /v1/messages batch and returns when the upstream
// answered or the attempt failed; see the package documentation for what
// each outcome returns. Messages the batch format cannot carry are left out
// of the request and reported as Permanent in a *sink.BatchError when the
// rest was delivered. An empty batch sends nothing.
func (w *Writer) Write(ctx context.Context, msgs []sink.Message) error {
	if w.closed.Load() {
		return sink.WithReason(ReasonClosed, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return transportError(ctx, false, w.cfg.Timeout, err)
	}
	select {
	case w.sem <- struct{}{}:
	case <-ctx.Done():
		return transportError(ctx, false, w.cfg.Timeout, ctx.Err())
	case <-w.closeCtx.Done():
		return sink.WithReason(ReasonClosed, ErrClosed)
	}
	defer func() { <-w.sem }()
	if w.closed.Load() {
		return sink.WithReason(ReasonClosed, ErrClosed)
	}
	if len(msgs) == 0 {
		return nil
	}

	var errs []error // per message, allocated on the first unrepresentable one
	for i := range msgs {
		if err := checkMessage(&msgs[i]); err != nil {
			if errs == nil {
				errs = make([]error, len(msgs))
			}
			errs[i] = err
		}
	}
	rejected := 0
	for _, e := range errs {
		if e != nil {
			rejected++
		}
	}
	if rejected == len(msgs) {
		return &sink.BatchError{Errs: errs}
	}
	err := w.post(ctx, msgs, errs)
	if err != nil || errs == nil {
		// A failed request is reported for the whole batch: the forwarder
		// retries it, or splits it on a Permanent error, and the messages
		// left out are reported once a request gets through.
		return err
	}
	return &sink.BatchError{Errs: errs}
}

// post sends the messages not marked in skip and returns the outcome.
func (w *Writer) post(ctx context.Context, msgs []sink.Message, skip []error) error {
	if w.inflight != nil && !w.inflight.done() {
		// The transport may still read the previous body (an early answer
		// while it was being sent): leave those buffers to it.
		w.buf, w.zbuf.b = nil, nil
	}
	w.buf = appendBatch(w.buf[:0], msgs, skip)
	payload := w.buf
	if w.cfg.Gzip {
		payload = w.compress(payload)
	}
	defer func() {
		if cap(w.buf) > keepBuffer {
			w.buf = nil
		}
		if cap(w.zbuf.b) > keepBuffer {
			w.zbuf.b = nil
		}
	}()

	rctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	stop := context.AfterFunc(w.closeCtx, cancel)
	defer stop()

	b := &body{r: bytes.NewReader(payload), closed: make(chan struct{})}
	w.inflight = b
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, w.cfg.urlString, b)
	if err != nil {
		b.Close()
		return sink.WithReason(ReasonNetwork, fmt.Errorf("httpsink: build request: %w", err))
	}
	req.ContentLength = int64(len(payload))
	req.Header = w.cfg.header.Clone()
	if w.cfg.host != "" {
		req.Host = w.cfg.host
	}
	resp, err := w.cfg.client.Do(req)
	if err != nil {
		return transportError(ctx, w.closed.Load(), w.cfg.Timeout, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.CopyN(io.Discard, resp.Body, drainBytes)
		return nil
	}

	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, BodyExcerptBytes))
	_, _ = io.CopyN(io.Discard, resp.Body, drainBytes)
	wait, err := statusError(resp, excerpt, w.cfg.Now())
	if sink.Reason(err) == ReasonRedirect {
		w.redirectHint(resp.StatusCode, err)
	}
	if wait > 0 {
		resp.Body.Close() // let the connection go back to the pool first
		if werr := w.wait(ctx, wait); werr != nil {
			return sink.WithReason(sink.Reason(err), fmt.Errorf("%w; waiting for Retry-After interrupted: %w", err, werr))
		}
	}
	return err
}

// compress gzips p into the reused zbuf.
func (w *Writer) compress(p []byte) []byte {
	w.zbuf.b = w.zbuf.b[:0]
	if w.zw == nil {
		w.zw, _ = gzip.NewWriterLevel(&w.zbuf, gzip.BestSpeed) // a valid level cannot fail
	} else {
		w.zw.Reset(&w.zbuf)
	}
	_, _ = w.zw.Write(p) // writes to a slice cannot fail
	_ = w.zw.Close()
	return w.zbuf.b
}

// sleep waits d, or until ctx ends or Close is called.
func (w *Writer) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-w.closeCtx.Done():
		return ErrClosed
	}
}

// redirectHint logs, at most once per redirectLogEvery, that the upstream
// redirects: a configuration error the retries cannot fix.
func (w *Writer) redirectHint(status int, err error) {
	w.hintCount++
	now := w.cfg.Now()
	if !w.lastHint.IsZero() && now.Sub(w.lastHint) < redirectLogEvery {
		return
	}
	w.cfg.Logger.Warn("upstream answers with a redirect, which is not followed: fix the sink URL; the batch is retried",
		"status", status, "url", w.cfg.url.Redacted(), "err", err, "redirects_since_last_log", w.hintCount)
	w.lastHint, w.hintCount = now, 0
}

// Close aborts a Write in progress, waits for it to return (until ctx is
// done at the latest) and closes idle connections of the sink's own client.
// Close is idempotent; Write after Close returns ErrClosed.
func (w *Writer) Close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		w.closed.Store(true)
		w.cancel()
	})
	select {
	case w.sem <- struct{}{}:
		<-w.sem
	case <-ctx.Done():
		return fmt.Errorf("httpsink: close: waiting for a Write: %w", ctx.Err())
	}
	if w.cfg.own {
		w.cfg.client.CloseIdleConnections()
	}
	return nil
}

// body is a request body that records when the transport closed it; until
// then its bytes must not be reused.
type body struct {
	r      *bytes.Reader
	once   sync.Once
	closed chan struct{}
}

func (b *body) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *body) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

func (b *body) done() bool {
	select {
	case <-b.closed:
		return true
	default:
		return false
	}
}

// sliceWriter is an io.Writer appending to a reused slice.
type sliceWriter struct{ b []byte }

func (s *sliceWriter) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}
