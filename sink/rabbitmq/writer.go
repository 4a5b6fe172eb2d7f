package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/internal/sinkmetrics"
)

// Errors returned by the Writer.
var (
	// ErrClosed is returned by Write after (or while) Close runs.
	ErrClosed = errors.New("rabbitmq: writer closed")
)

var _ sink.Sink = (*Writer)(nil)

// Writer is the RabbitMQ sink: one AMQP connection (opened by the first
// Write, reopened after it is lost) with one publishing channel in confirm
// mode. Write makes a single attempt; the forwarder retries. Write and
// Close are safe for concurrent use; Writes run one at a time.
type Writer struct {
	cfg     config
	log     *slog.Logger
	metrics *sinkMetrics

	closing context.Context // cancelled when Close starts: aborts blocked Writes
	abort   context.CancelFunc

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	writeMu   sync.Mutex
	exchanges map[string]bool // exchanges known to exist; guarded by writeMu
	grace     graceTracker

	connMu   sync.Mutex
	conn     *connection
	backoff  time.Duration // current reconnect backoff; 0 after a success
	nextDial time.Time     // no connection attempt before this
	dialErr  error         // why the last attempt failed

	health  *sinkmetrics.Health
	stateMu sync.Mutex // guards blocked
	blocked bool
}

// New validates o and returns a Writer. It does not contact the broker:
// the first Write does.
func New(o Options) (*Writer, error) {
	cfg, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	w := &Writer{
		cfg:       cfg,
		log:       cfg.Logger.With(slog.String("sink", cfg.Name)),
		metrics:   newSinkMetrics(cfg.Metrics, cfg.Name),
		exchanges: make(map[string]bool),
	}
	w.health = sinkmetrics.NewHealth(w.metrics, w.log, "rabbitmq broker", "rabbitmq", "")
	w.closing, w.abort = context.WithCancel(context.Background())
	w.metrics.SetAuthFailing(false)
	w.metrics.SetGauge(metricBlocked, false)
	w.log.Info("rabbitmq sink configured",
		slog.String("url", cfg.redacted), slog.String("exchange", cfg.exchange.String()),
		slog.String("routing_key", cfg.routingKey.String()), slog.Duration("write_timeout", cfg.WriteTimeout),
		slog.Duration("unroutable_grace", cfg.UnroutableGrace))
	return w, nil
}

// Close stops the Writer: blocked Writes return ErrClosed, and the
// connection is closed politely (connection.close) unless ctx ends first;
// then the socket is cut and Close returns ctx's error. Close is
// idempotent; later calls return the first result.
func (w *Writer) Close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		w.connMu.Lock()
		w.closed.Store(true)
		c := w.conn
		w.conn = nil
		w.connMu.Unlock()
		w.abort()
		if c == nil {
			return
		}
		if err := c.close(ctx); err != nil {
			w.closeErr = fmt.Errorf("rabbitmq: close: %w", err)
			w.log.Warn("rabbitmq sink close did not finish in time; connection cut", slog.Any("error", err))
		}
	})
	return w.closeErr
}

// connection returns the open connection, or opens one (fresh) unless the
// reconnect backoff runs; then it fails at once with the last error.
func (w *Writer) connection(ctx context.Context) (c *connection, fresh bool, err error) {
	w.connMu.Lock()
	if w.closed.Load() {
		w.connMu.Unlock()
		return nil, false, ErrClosed
	}
	if old := w.conn; old != nil {
		if !old.isDead() {
			w.connMu.Unlock()
			return old, false, nil
		}
		w.conn = nil
		old.kill()
	}
	if wait := time.Until(w.nextDial); wait > 0 {
		err := w.dialErr
		w.connMu.Unlock()
		return nil, false, fmt.Errorf("rabbitmq: not connected (next attempt in %v): %w", wait.Round(time.Millisecond), err)
	}
	w.connMu.Unlock()

	c, err = w.dial(ctx)

	w.connMu.Lock()
	defer w.connMu.Unlock()
	if w.closed.Load() {
		if c != nil {
			c.kill()
		}
		return nil, false, ErrClosed
	}
	if err != nil {
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			w.backoff = min(max(2*w.backoff, w.cfg.ReconnectMin), w.cfg.ReconnectMax)
			jittered := w.backoff/2 + rand.N(w.backoff/2+1)
			w.nextDial, w.dialErr = time.Now().Add(jittered), err
		}
		return nil, false, fmt.Errorf("rabbitmq: connect: %w", err)
	}
	w.backoff, w.nextDial, w.dialErr = 0, time.Time{}, nil
	w.conn = c
	w.log.Debug("rabbitmq connection open")
	w.noteBlocked(false, "") // a new connection is blocked only once the broker says so
	return c, true, nil
}

// contextError turns the error of a call whose context ended into the
// context's error (timeout or cancel), or ErrClosed when Close aborted it.
func (w *Writer) contextError(ctx context.Context, err error) error {
	if w.closed.Load() {
		return ErrClosed
	}
	if ctx.Err() == nil {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w (%v)", ctx.Err(), err)
}

// noteBlocked records connection.blocked / unblocked for the gauge and the
// log.
func (w *Writer) noteBlocked(on bool, reason string) {
	w.stateMu.Lock()
	defer w.stateMu.Unlock()
	if on == w.blocked {
		return
	}
	w.blocked = on
	w.metrics.SetGauge(metricBlocked, on)
	if on {
		w.log.Warn("rabbitmq broker blocks publishing (resource alarm); messages wait in the spool", slog.String("broker_reason", reason))
	} else {
		w.log.Info("rabbitmq broker unblocked publishing")
	}
}
