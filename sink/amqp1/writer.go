package amqp1

import (
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/internal/sinkmetrics"
)

// Errors returned by the Writer.
var (
	// ErrClosed is returned by Write after (or while) Close runs.
	ErrClosed = errors.New("amqp1: writer closed")
)

var _ sink.Sink = (*Writer)(nil)

// closeLinger bounds the orderly close of a link or connection the Writer
// drops on its own (after an error or for the link limit); past it the
// socket is cut.
const closeLinger = 2 * time.Second

// Writer is the AMQP 1.0 sink: one connection, one session, one sender
// link per address. Write and Close are safe for concurrent use;
// concurrent Writes run one after the other.
type Writer struct {
	cfg     config
	metrics *sinkMetrics
	log     *slog.Logger
	enc     *encoder // guarded by sem

	// sem is a one-slot lock held by Write and Close; a channel so that
	// waiting for it honours ctx.
	sem chan struct{}

	closed    atomic.Bool
	closing   context.Context // cancelled when Close starts: aborts a blocked Write
	abort     context.CancelFunc
	closeOnce sync.Once
	closeErr  error

	// Guarded by sem.
	conn      *connection // nil: not connected
	nextDial  time.Time   // no connection attempt before
	backoff   time.Duration
	dialErr   error // the last failed attempt, returned until nextDial
	unknown   unknownAddresses
	probing   map[string]bool // addresses whose last outcome was a transient failure
	everConn  bool
	settleLog bool

	health *sinkmetrics.Health
}

// connection is one AMQP connection with its session and sender links.
type connection struct {
	raw   net.Conn
	conn  *amqp.Conn
	sess  *amqp.Session
	links map[string]*link
	tick  uint64 // use counter for the least recently used link
}

type link struct {
	addr    string
	snd     *amqp.Sender
	lastUse uint64
}

// New validates o and returns a Writer. It does not contact the broker:
// the first Write does.
func New(o Options) (*Writer, error) {
	cfg, err := o.config()
	if err != nil {
		return nil, err
	}
	w := &Writer{
		cfg:     cfg,
		metrics: newSinkMetrics(cfg.Metrics, cfg.Name),
		log:     cfg.Logger.With(slog.String("sink", cfg.Name)),
		enc:     newEncoder(),
		sem:     make(chan struct{}, 1),
		unknown: unknownAddresses{first: map[string]time.Time{}},
		probing: map[string]bool{},
	}
	w.health = sinkmetrics.NewHealth(w.metrics, w.log, "amqp1 broker", "amqp1", " (nothing is dead-lettered for it)")
	w.closing, w.abort = context.WithCancel(context.Background())
	w.metrics.SetAuthFailing(false)
	sasl := "anonymous"
	if cfg.user != "" {
		sasl = "plain"
	}
	w.log.Info("amqp1 sink configured",
		slog.String("url", RedactURL(cfg.URL)), slog.String("address", cfg.Address),
		slog.String("sasl", sasl), slog.Bool("tls", cfg.useTLS), slog.Any("target_capabilities", cfg.caps),
		slog.Duration("write_timeout", cfg.WriteTimeout))
	return w, nil
}

// connect returns the connection, dialling when there is none. Within the
// reconnect backoff after a failed attempt it returns that attempt's error
// at once.
func (w *Writer) connect(ctx context.Context) (*connection, error) {
	if w.conn != nil {
		select {
		case <-w.conn.conn.Done():
			w.dropConn(fmt.Errorf("amqp1: connection closed: %w", w.conn.conn.Err()))
		default:
			return w.conn, nil
		}
	}
	now := time.Now()
	if now.Before(w.nextDial) && w.dialErr != nil {
		return nil, w.dialErr
	}
	c, err := w.dial(ctx)
	if err != nil {
		if w.closed.Load() {
			err = ErrClosed
		}
		if ctx.Err() == nil || classify(err).reason != ReasonCanceled {
			w.backoff = min(max(w.backoff*2, reconnectMin), reconnectMax)
			jitter := time.Duration(rand.Int64N(int64(w.backoff)/2 + 1))
			w.nextDial = time.Now().Add(w.backoff/2 + jitter)
			w.dialErr = err
		}
		return nil, err
	}
	w.backoff, w.dialErr, w.nextDial = 0, nil, time.Time{}
	w.conn = c
	if w.everConn {
		w.log.Info("amqp1 connected again", slog.String("broker", w.cfg.hostPort))
	} else {
		w.log.Info("amqp1 connected", slog.String("broker", w.cfg.hostPort))
		w.everConn = true
	}
	return c, nil
}

// dial opens a connection and a session within DialTimeout. The socket is
// dialled here, not by go-amqp, so that Close can always cut it.
func (w *Writer) dial(ctx context.Context) (*connection, error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.DialTimeout)
	defer cancel()
	d := net.Dialer{KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", w.cfg.hostPort)
	if err != nil {
		return nil, fmt.Errorf("amqp1: dial %s: %w", w.cfg.hostPort, err)
	}
	nc := raw
	if w.cfg.useTLS {
		tc := tls.Client(raw, w.cfg.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("amqp1: TLS handshake with %s: %w", w.cfg.hostPort, err)
		}
		nc = tc
	}
	sasl := amqp.SASLTypeAnonymous()
	if w.cfg.user != "" {
		sasl = amqp.SASLTypePlain(w.cfg.user, w.cfg.password)
	}
	conn, err := amqp.NewConn(ctx, nc, &amqp.ConnOptions{
		ContainerID:  "sluice-" + w.cfg.Name + "-" + randomID(),
		HostName:     w.cfg.host,
		SASLType:     sasl,
		WriteTimeout: w.cfg.WriteTimeout,
		Properties:   map[string]any{"product": "sluice"},
	})
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("amqp1: open connection to %s: %w", w.cfg.hostPort, err)
	}
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		closeConn(conn, raw)
		return nil, fmt.Errorf("amqp1: begin session on %s: %w", w.cfg.hostPort, err)
	}
	return &connection{raw: raw, conn: conn, sess: sess, links: map[string]*link{}}, nil
}

func randomID() string {
	var b [6]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// dropConn forgets the connection and closes it in the background: its
// unsettled messages are reported by the Write that saw the failure.
func (w *Writer) dropConn(cause error) {
	c := w.conn
	if c == nil {
		return
	}
	w.conn = nil
	if !w.closed.Load() {
		w.log.Warn("amqp1 connection lost; reconnecting", slog.String("reason", classify(cause).reason), slog.Any("error", cause))
	}
	go closeConn(c.conn, c.raw)
}

// closeConn closes an AMQP connection, cutting the socket when the
// orderly close takes longer than closeLinger.
func closeConn(conn *amqp.Conn, raw net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = conn.Close()
	}()
	select {
	case <-done:
	case <-time.After(closeLinger):
		raw.Close()
		<-done
	}
}

// sender returns the link for addr, attaching it when there is none.
func (w *Writer) sender(ctx context.Context, c *connection, addr string) (*link, error) {
	c.tick++
	if l := c.links[addr]; l != nil {
		l.lastUse = c.tick
		return l, nil
	}
	if len(c.links) >= w.cfg.MaxLinks {
		var lru *link
		for _, l := range c.links {
			if lru == nil || l.lastUse < lru.lastUse {
				lru = l
			}
		}
		w.dropLink(c, lru)
	}
	unsettled := amqp.SenderSettleModeUnsettled
	opts := &amqp.SenderOptions{
		SettlementMode:     &unsettled,
		TargetCapabilities: w.cfg.caps,
		Name:               "sluice-" + w.cfg.Name + "-" + randomID(),
	}
	snd, err := c.sess.NewSender(ctx, addr, opts)
	if err != nil && isSettleModeError(err) {
		// The broker answered another settlement mode (Service Bus says
		// "mixed"): accept what it offers. Every message is still sent
		// unsettled and waits for its outcome; a broker that forces
		// pre-settled links fails each send with ReasonSettleMode.
		opts.SettlementMode = nil
		snd, err = c.sess.NewSender(ctx, addr, opts)
	}
	if err != nil {
		return nil, err
	}
	l := &link{addr: addr, snd: snd, lastUse: c.tick}
	c.links[addr] = l
	return l, nil
}

// dropLink forgets a link and closes it in the background.
func (w *Writer) dropLink(c *connection, l *link) {
	if c.links[l.addr] != l {
		return
	}
	delete(c.links, l.addr)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeLinger)
		defer cancel()
		_ = l.snd.Close(ctx)
	}()
}

// Close stops the Writer: a blocked Write returns (ErrClosed, transient),
// then the links, session and connection are closed. When ctx ends first,
// Close cuts the connection and returns ctx's error. Close is idempotent;
// later calls return the first result.
func (w *Writer) Close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		w.closed.Store(true)
		w.abort()
		select {
		case w.sem <- struct{}{}:
		case <-ctx.Done():
			w.closeErr = fmt.Errorf("amqp1: close: waiting for a Write: %w", ctx.Err())
			return
		}
		defer func() { <-w.sem }()
		c := w.conn
		w.conn = nil
		if c == nil {
			return
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = c.conn.Close()
		}()
		select {
		case <-done:
		case <-ctx.Done():
			c.raw.Close()
			<-done
			w.closeErr = fmt.Errorf("amqp1: close: %w", ctx.Err())
		}
	})
	return w.closeErr
}

// unknownAddresses remembers since when each address has been unknown to
// the broker, for UnknownAddressGrace.
type unknownAddresses struct {
	first     map[string]time.Time
	permanent map[string]bool // logged as permanent once
}

// maxUnknown bounds the map; beyond it the oldest entry goes (its grace
// starts again).
const maxUnknown = 4096

func (u *unknownAddresses) seen(addr string, now time.Time) time.Time {
	if t, ok := u.first[addr]; ok {
		return t
	}
	if len(u.first) >= maxUnknown {
		var oldest string
		var ot time.Time
		for a, t := range u.first {
			if oldest == "" || t.Before(ot) {
				oldest, ot = a, t
			}
		}
		delete(u.first, oldest)
		delete(u.permanent, oldest)
	}
	u.first[addr] = now
	return now
}

func (u *unknownAddresses) known(addr string) {
	delete(u.first, addr)
	delete(u.permanent, addr)
}

// markPermanent reports whether addr turned permanent just now.
func (u *unknownAddresses) markPermanent(addr string) bool {
	if u.permanent == nil {
		u.permanent = map[string]bool{}
	}
	if u.permanent[addr] {
		return false
	}
	u.permanent[addr] = true
	return true
}
