package nats

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/sluiceio/sluice/sink"
)

// Errors returned by the Writer; see the package documentation for the
// classes of the others.
var (
	// ErrClosed is returned by Write after Close, and by a Write that Close
	// aborted.
	ErrClosed = errors.New("nats: writer closed")
	// ErrNotConnected is returned by Write while no server is connected
	// (the client keeps reconnecting in the background).
	ErrNotConnected = errors.New("nats: not connected")
)

// Ping settings: a server that stops answering (hung, or cut off without a
// reset) is dropped after about pingInterval × maxPingsOut and dialled
// again.
const (
	pingInterval = 10 * time.Second
	maxPingsOut  = 3
)

// Writer is a sink.Sink publishing to NATS JetStream.
type Writer struct {
	cfg     config
	log     *slog.Logger
	metrics *sinkMetrics
	dialer  *dialer
	opts    []natsgo.Option

	closing   chan struct{}
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	ops       sync.WaitGroup // publishing goroutines of Writes

	mu      sync.Mutex
	cs      *connState    // nil until connected
	dialErr error         // why the last attempt of the dial loop failed
	dialing bool          // the dial loop runs
	ready   chan struct{} // closed when the dial loop's first attempt ended
	dials   sync.WaitGroup

	state    connTracker
	noStream noStreams
	spare    atomic.Pointer[scratch] // for the next Write
}

var _ sink.Sink = (*Writer)(nil)

// connState is one nats.go connection and its JetStream context.
type connState struct {
	nc *natsgo.Conn
	js jetstream.JetStream
}

// New returns a Writer. It does not wait for a server: the connection is
// made in the background, and the first Write waits for the first attempt
// (at most ConnectTimeout per server); later ones fail at once while no
// server is connected.
func New(o Options) (*Writer, error) {
	cfg, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	w := &Writer{
		cfg:     cfg,
		log:     cfg.Logger,
		metrics: newSinkMetrics(cfg.Metrics, cfg.Name),
		dialer:  newDialer(cfg.ConnectTimeout),
		closing: make(chan struct{}),
	}
	if w.log == nil {
		w.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	w.state.w = w
	w.opts = []natsgo.Option{
		natsgo.Name(cfg.ClientName),
		natsgo.Timeout(cfg.ConnectTimeout),
		natsgo.SetCustomDialer(w.dialer),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(cfg.ReconnectWait),
		// No reconnect buffer: a publish while disconnected fails at once.
		// Buffered messages would go out on the next connection while
		// earlier ones may have died with the old one, and a retry would
		// then store them out of order.
		natsgo.ReconnectBufSize(-1),
		// A bad credential rotation is retried forever, like any outage.
		natsgo.IgnoreAuthErrorAbort(),
		natsgo.FlusherTimeout(cfg.ConnectTimeout),
		natsgo.PingInterval(pingInterval),
		natsgo.MaxPingsOutstanding(maxPingsOut),
		natsgo.ConnectHandler(w.state.onConnect),
		natsgo.ReconnectHandler(w.state.onConnect),
		natsgo.DisconnectErrHandler(w.state.onDisconnect),
		natsgo.ReconnectErrHandler(w.state.onConnectError),
		natsgo.ErrorHandler(w.state.onAsyncError),
	}
	if cfg.TLS != nil {
		w.opts = append(w.opts, natsgo.Secure(cfg.TLS))
	}
	switch {
	case cfg.CredsFile != "":
		if err := checkCredsFile(cfg.CredsFile); err != nil {
			return nil, err
		}
		w.opts = append(w.opts, natsgo.UserCredentials(cfg.CredsFile))
	case cfg.NkeyFile != "":
		opt, err := natsgo.NkeyOptionFromSeed(cfg.NkeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats: nkey file %s: %w", cfg.NkeyFile, err)
		}
		w.opts = append(w.opts, opt)
	}
	w.metrics.SetAuthFailing(false)
	w.log.Info("nats sink configured",
		slog.Any("servers", cfg.display), slog.String("subject", cfg.subject.String()),
		slog.Duration("ack_timeout", cfg.AckTimeout), slog.Int("max_pending", cfg.MaxPending),
		slog.Bool("tls", cfg.TLS != nil || strings.HasPrefix(cfg.servers[0], "tls:")),
		slog.Bool("creds_file", cfg.CredsFile != ""), slog.Bool("nkey_file", cfg.NkeyFile != ""))
	w.mu.Lock()
	w.dialLocked()
	w.mu.Unlock()
	return w, nil
}

// checkCredsFile checks that file holds a user JWT and an nkey seed, so
// that a wrong path fails at start-up instead of at every connection
// attempt.
func checkCredsFile(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("nats: credentials file: %w", err)
	}
	jwt, err := nkeys.ParseDecoratedJWT(b)
	if err != nil || strings.Count(jwt, ".") != 2 || !strings.HasPrefix(jwt, "ey") {
		return fmt.Errorf("nats: credentials file %s: no user JWT", file)
	}
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return fmt.Errorf("nats: credentials file %s: no nkey seed: %w", file, err)
	}
	kp.Wipe()
	return nil
}

// dialLocked starts connecting in the background: nats.Connect, again
// every ReconnectWait until it succeeds or the Writer is closed. Once
// connected, nats.go reconnects by itself. ready is closed after the
// first attempt. w.mu is held.
func (w *Writer) dialLocked() {
	ready := make(chan struct{})
	w.ready, w.dialing = ready, true
	w.dials.Add(1)
	go func() {
		defer w.dials.Done()
		first := true
		for {
			cs, err := w.connect()
			if err != nil {
				w.state.onConnectError(nil, err) // before Writes can see err
			}
			w.mu.Lock()
			if err == nil {
				w.cs, w.dialErr, w.dialing = cs, nil, false
			} else {
				w.dialErr = err
			}
			w.mu.Unlock()
			if first {
				close(ready)
				first = false
			}
			if err == nil {
				if w.closed.Load() {
					cs.nc.Close()
				}
				return
			}
			select {
			case <-w.closing:
				return
			case <-time.After(w.cfg.ReconnectWait):
			}
		}
	}()
}

// connect makes one connection attempt (each server once).
func (w *Writer) connect() (*connState, error) {
	nc, err := natsgo.Connect(strings.Join(w.cfg.servers, ","), w.opts...)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(w.cfg.MaxPending),
		jetstream.WithPublishAsyncTimeout(w.cfg.AckTimeout),
		jetstream.WithDefaultTimeout(w.cfg.AckTimeout))
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &connState{nc: nc, js: js}, nil
}

// conn returns the current connection once the first connection attempt
// ended, or a transient error when no server is connected now.
func (w *Writer) conn(ctx context.Context) (*connState, error) {
	w.mu.Lock()
	ready := w.ready
	w.mu.Unlock()
	select {
	case <-ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-w.closing:
		return nil, ErrClosed
	}
	w.mu.Lock()
	cs, dialErr := w.cs, w.dialErr
	if cs != nil && cs.nc.IsClosed() && !w.closed.Load() && !w.dialing {
		// nats.go does not give up with these options; should the
		// connection end anyway, make a new one.
		w.log.Warn("nats connection closed; connecting again")
		w.dialLocked()
		cs = nil
	}
	w.mu.Unlock()
	switch {
	case cs == nil && dialErr != nil:
		return nil, fmt.Errorf("%w: %w", ErrNotConnected, dialErr)
	case cs == nil:
		return nil, ErrNotConnected
	case cs.nc.Status() != natsgo.CONNECTED:
		if cause := w.state.lastError(); cause != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotConnected, cause)
		}
		return nil, ErrNotConnected
	}
	return cs, nil
}

// Close stops the Writer: blocked Writes return ErrClosed and the
// connection is closed. When ctx ends first, Close cuts the sockets and
// returns ctx's error. Close is idempotent; later calls return the first
// result.
func (w *Writer) Close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed.Store(true)
		w.mu.Unlock()
		close(w.closing)
		w.mu.Lock()
		ready := w.ready
		w.mu.Unlock()
		select {
		case <-ready:
		default:
			// A connection attempt is under way (a server that accepts
			// and never answers holds it for ConnectTimeout): cut it.
			w.dialer.closeAll()
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			w.dials.Wait()
			w.mu.Lock()
			cs := w.cs
			w.mu.Unlock()
			if cs != nil && cs.nc != nil {
				cs.nc.Close()
			}
			w.ops.Wait()
		}()
		select {
		case <-done:
		case <-ctx.Done():
			w.closeErr = fmt.Errorf("nats: close: %w", ctx.Err())
			w.log.Warn("nats sink close did not finish in time; cutting connections", slog.Any("error", ctx.Err()))
		}
		w.dialer.closeAll()
	})
	return w.closeErr
}

// connTracker follows the connection's state from nats.go's callbacks for
// the gauges, the log and the reason of a Write while disconnected.
type connTracker struct {
	w *Writer

	mu       sync.Mutex
	lastErr  error     // why the last connection attempt or connection failed
	permErr  error     // the last permissions violation the server reported
	permAt   time.Time // when
	up       int       // 0 down, 1 up (when known)
	known    bool      // a connection event happened
	authFail bool
}

func (t *connTracker) onConnect(nc *natsgo.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastErr = nil
	if !t.known || t.up != 1 {
		t.w.log.Info("nats server connected", slog.String("server", nc.ConnectedUrlRedacted()),
			slog.String("version", nc.ConnectedServerVersion()))
	}
	t.known, t.up = true, 1
	t.w.metrics.SetBrokerUp(true)
	if t.authFail {
		t.w.log.Info("nats authentication ok again")
		t.authFail = false
		t.w.metrics.SetAuthFailing(false)
	}
}

func (t *connTracker) onDisconnect(_ *natsgo.Conn, err error) {
	if t.w.closed.Load() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.lastErr = err
	}
	if t.up != 0 || !t.known {
		t.w.log.Warn("nats server disconnected; reconnecting", slog.Any("error", err))
	}
	t.known, t.up = true, 0
	t.w.metrics.SetBrokerUp(false)
}

// onConnectError records a failed connection attempt; err nil means the
// first attempt failed without an error nats.go reports (all refused).
func (t *connTracker) onConnectError(_ *natsgo.Conn, err error) {
	if t.w.closed.Load() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.lastErr = err
	}
	if !t.known || t.up != 0 {
		t.w.log.Warn("nats server unreachable; retrying", slog.Any("error", err))
	}
	t.known, t.up = true, 0
	t.w.metrics.SetBrokerUp(false)
	if err != nil && classify(err).reason == ReasonAuth && !t.authFail {
		t.w.log.Error("nats authentication failing; retrying", slog.Any("error", err))
		t.authFail = true
		t.w.metrics.SetAuthFailing(true)
	}
}

// onAsyncError receives errors the server sends outside of a request:
// permissions violations (publishing to a subject, or subscribing to the
// inbox the PubAcks come back on, is not allowed; the publish then never
// gets its PubAck).
func (t *connTracker) onAsyncError(_ *natsgo.Conn, _ *natsgo.Subscription, err error) {
	if err == nil || !errors.Is(err, natsgo.ErrPermissionViolation) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.permErr, t.permAt = err, time.Now()
	if !t.authFail {
		t.w.log.Error("nats permissions violation; retrying", slog.Any("error", err))
		t.authFail = true
		t.w.metrics.SetAuthFailing(true)
	}
}

// delivered records that a Write got PubAcks: authorization works.
func (t *connTracker) delivered() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.authFail {
		t.w.log.Info("nats authentication ok again")
		t.authFail = false
		t.w.metrics.SetAuthFailing(false)
	}
}

func (t *connTracker) lastError() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastErr
}

// permissionSince returns the last permissions violation if it arrived at
// or after since.
func (t *connTracker) permissionSince(since time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.permErr != nil && !t.permAt.Before(since) {
		return t.permErr
	}
	return nil
}
