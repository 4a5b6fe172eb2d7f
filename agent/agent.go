package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/spool"
)

// SinkSpec is one configured sink with its forwarding settings. Zero
// values mean the defaults noted.
type SinkSpec struct {
	Name            string
	Type            string
	Sink            sink.Sink
	Topics          []string      // globs; default "*"
	MaxBacklogBytes int64         // 0 = only the spool cap
	BacklogPolicy   string        // "reject" (default) or "drop_oldest"
	MaxAge          time.Duration // 0 = off; older messages are dead-lettered as "expired"
	BatchMessages   int           // default 1000
	BatchBytes      int           // default 1 MiB
	Linger          time.Duration // default 5 ms
	RetryMin        time.Duration // default 100 ms
	RetryMax        time.Duration // default 30 s
	// DeadLetterTopic, when set, also sends each dead letter of this sink
	// to that topic (Kafka sinks), reason in headers; best effort.
	DeadLetterTopic string
}

// Options configure an Agent. Zero values mean the defaults noted.
type Options struct {
	Listen      string // "host:port" or "unix:/path"; default 127.0.0.1:7101
	AdminListen string // default :7103; "-" disables
	AuthToken   string // bearer token required on the ingest listener when set

	Spool      *spool.Spool // opened by the caller; the agent closes it
	DeadLetter *spool.Spool // dead-letter log; the agent closes it
	Sinks      []SinkSpec
	Queues     []QueueSpec // local pull queues (queue.go)
	// MaxLongPolls bounds queue pulls waiting at once; more answer at once
	// (empty when nothing is there). Default 1024.
	MaxLongPolls int

	MaxMessageBytes  int   // default 1 MiB
	MaxRequestBytes  int   // default 16 MiB
	MaxHeaderBytes   int   // default 16 KiB
	MaxHeaders       int   // default 64
	MaxInflightBytes int64 // request bodies in flight; default 64 MiB
	MaxConnections   int   // default 4096

	AckTimeout    time.Duration // default Sluice-Timeout, 10 s
	AckTimeoutMax time.Duration // 60 s
	ReadTimeout   time.Duration // 10 s
	WriteTimeout  time.Duration // 10 s
	IdleTimeout   time.Duration // 60 s

	IdempotencyWindow time.Duration // how long an Idempotency-Key is remembered; default 10 min
	IdempotencyMax    int           // keys remembered at most; default 100000

	CallbackAllow    []string      // host globs and CIDRs callbacks may reach besides loopback
	CallbackAttempts int           // tries per report; default 5
	CallbackBackoff  time.Duration // first retry wait; default 1 s

	DrainTimeout time.Duration // 20 s
	DrainAccept  bool          // keep accepting pushes while draining
	RecordCache  int           // delivery-report cache entries, default 65536

	// REST Proxy-compatible produce API (restproxy.go).
	RestProxyAck     string // when it answers: "spooled" (default, after the durable local write) or "delivered"
	RestProxyCluster string // the one cluster id /v3/clusters exposes; default "sluice"

	Logger  *slog.Logger
	Metrics *metrics.Set // default: a new set
	Version string
}

func (o *Options) setDefaults() {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	defD := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:7101"
	}
	if o.AdminListen == "" {
		o.AdminListen = ":7103"
	}
	def(&o.MaxMessageBytes, 1<<20)
	def(&o.MaxRequestBytes, 16<<20)
	def(&o.MaxHeaderBytes, 16<<10)
	def(&o.MaxHeaders, 64)
	def(&o.MaxConnections, 4096)
	def(&o.RecordCache, 65536)
	def(&o.MaxLongPolls, 1024)
	for i := range o.Queues {
		q := &o.Queues[i]
		if len(q.Topics) == 0 {
			q.Topics = []string{"*"}
		}
		if q.BacklogPolicy == "" {
			q.BacklogPolicy = "reject"
		}
		defD(&q.Visibility, 30*time.Second)
	}
	def(&o.IdempotencyMax, 100000)
	def(&o.CallbackAttempts, 5)
	defD(&o.CallbackBackoff, time.Second)
	if o.IdempotencyWindow <= 0 {
		o.IdempotencyWindow = 10 * time.Minute
	}
	if o.MaxInflightBytes <= 0 {
		o.MaxInflightBytes = 64 << 20
	}
	defD(&o.AckTimeout, 10*time.Second)
	defD(&o.AckTimeoutMax, 60*time.Second)
	defD(&o.ReadTimeout, 10*time.Second)
	defD(&o.WriteTimeout, 10*time.Second)
	defD(&o.IdleTimeout, 60*time.Second)
	defD(&o.DrainTimeout, 20*time.Second)
	if o.RestProxyAck == "" {
		o.RestProxyAck = "spooled"
	}
	if o.RestProxyCluster == "" {
		o.RestProxyCluster = "sluice"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	for i := range o.Sinks {
		s := &o.Sinks[i]
		if len(s.Topics) == 0 {
			s.Topics = []string{"*"}
		}
		if s.BacklogPolicy == "" {
			s.BacklogPolicy = "reject"
		}
		def(&s.BatchMessages, 1000)
		def(&s.BatchBytes, 1<<20)
		defD(&s.Linger, 5*time.Millisecond)
		defD(&s.RetryMin, 100*time.Millisecond)
		defD(&s.RetryMax, 30*time.Second)
	}
}

// Agent is the running sidecar: ingest server, forwarders, admin server.
type Agent struct {
	opts      Options
	log       *slog.Logger
	sp        *spool.Spool
	fwds      []*forwarder
	queues    []*queue
	longPolls atomic.Int64
	dl        *deadLetters
	records   *records
	idem      *idempotency
	guard     *callbackGuard
	cb        *callbacks
	m         *agentMetrics
	inflight  atomic.Int64

	draining  atomic.Bool
	drainReq  chan struct{}
	drainOnce sync.Once

	ingest *fasthttp.Server
	admin  *fasthttp.Server
	ready  atomic.Bool

	addrMu              sync.Mutex
	ingestAddr, adminAd string
	readyCh             chan struct{}
}

// Ready is closed once the agent listens (spool recovered, forwarders
// running).
func (a *Agent) Ready() <-chan struct{} { return a.readyCh }

// Addrs returns the bound ingest and admin addresses (after Ready).
func (a *Agent) Addrs() (ingest, admin string) {
	a.addrMu.Lock()
	defer a.addrMu.Unlock()
	return a.ingestAddr, a.adminAd
}

// New wires an agent: it opens one spool cursor per sink. Nothing listens
// until Run.
func New(o Options) (*Agent, error) {
	o.setDefaults()
	if o.Spool == nil || o.DeadLetter == nil {
		return nil, errors.New("agent: Spool and DeadLetter are required")
	}
	if len(o.Sinks)+len(o.Queues) == 0 {
		return nil, errors.New("agent: no sinks")
	}
	a := &Agent{opts: o, log: o.Logger, sp: o.Spool, drainReq: make(chan struct{}), readyCh: make(chan struct{})}
	a.m = newAgentMetrics(o.Metrics)
	a.records = newRecords(o.RecordCache)
	a.idem = newIdempotency(o.IdempotencyWindow, o.IdempotencyMax)
	if err := a.idem.rebuild(o.Spool, time.Now()); err != nil {
		return nil, fmt.Errorf("agent: reload idempotency keys: %w", err)
	}
	dl, err := openDeadLetters(o.DeadLetter, a.m, o.Logger)
	if err != nil {
		return nil, err
	}
	a.dl = dl
	for _, spec := range o.Sinks {
		if err := ValidateGlobs(spec.Topics); err != nil {
			return nil, fmt.Errorf("sink %s: %w", spec.Name, err)
		}
		c, err := o.Spool.Cursor(spec.Name, spool.CursorOptions{})
		if err != nil {
			return nil, fmt.Errorf("sink %s: %w", spec.Name, err)
		}
		a.fwds = append(a.fwds, newForwarder(a, spec, c))
	}
	for _, spec := range o.Queues {
		if err := ValidateGlobs(spec.Topics); err != nil {
			return nil, fmt.Errorf("queue %s: %w", spec.Name, err)
		}
		c, err := o.Spool.Cursor(spec.Name, spool.CursorOptions{})
		if err != nil {
			return nil, fmt.Errorf("queue %s: %w", spec.Name, err)
		}
		q, err := newQueue(a, spec, c)
		if err != nil {
			return nil, err
		}
		a.queues = append(a.queues, q)
	}
	if a.guard, err = newCallbackGuard(o.CallbackAllow); err != nil {
		return nil, err
	}
	if a.cb, err = newCallbacks(a, a.guard, o.CallbackAttempts, o.CallbackBackoff); err != nil {
		return nil, err
	}
	for _, ci := range o.Spool.Cursors() {
		if !ci.InUse {
			a.log.Warn("spool cursor of a sink that is no longer configured is kept and holds its backlog; remove it with 'sluice spool cursor rm'",
				"cursor", ci.Name, "backlog_bytes", ci.Backlog.Bytes)
		}
	}
	a.m.register(a)
	a.registerQueueMetrics()
	a.ingest = a.newIngestServer()
	a.admin = a.newAdminServer()
	return a, nil
}

// listen opens "host:port" or "unix:/path".
func listen(addr string) (net.Listener, error) {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		_ = os.Remove(p)
		ln, err := net.Listen("unix", p)
		if err != nil {
			return nil, err
		}
		_ = os.Chmod(p, 0o660)
		return ln, nil
	}
	return net.Listen("tcp", addr)
}

// Run serves until ctx is done (SIGTERM) or a drain is requested, then
// drains: stop accepting (unless DrainAccept), forward until every backlog
// is empty or DrainTimeout, close sinks, persist cursors, close the spools.
func (a *Agent) Run(ctx context.Context) error {
	ln, err := listen(a.opts.Listen)
	if err != nil {
		return fmt.Errorf("ingest listen: %w", err)
	}
	var adminLn net.Listener
	if a.opts.AdminListen != "-" {
		if adminLn, err = listen(a.opts.AdminListen); err != nil {
			ln.Close()
			return fmt.Errorf("admin listen: %w", err)
		}
	}
	a.log.Info("sluice started", "listen", ln.Addr().String(), "admin", addrOf(adminLn),
		"spool", a.sp.Dir(), "spool_id", a.sp.SpoolID(), "epoch", a.sp.Epoch(), "sinks", len(a.fwds))

	fctx, stopForwarders := context.WithCancel(context.Background())
	var fwg sync.WaitGroup
	for _, f := range a.fwds {
		fwg.Add(1)
		go func() { defer fwg.Done(); f.run(fctx) }()
	}
	for _, q := range a.queues {
		fwg.Add(1)
		go func() { defer fwg.Done(); q.run(fctx) }()
	}
	fwg.Add(1)
	go func() { defer fwg.Done(); a.cb.run(fctx) }()
	serveErr := make(chan error, 2)
	go func() { serveErr <- a.ingest.Serve(ln) }()
	if adminLn != nil {
		go func() { serveErr <- a.admin.Serve(adminLn) }()
	}
	a.addrMu.Lock()
	a.ingestAddr, a.adminAd = ln.Addr().String(), addrOf(adminLn)
	a.addrMu.Unlock()
	a.ready.Store(true)
	close(a.readyCh)

	var runErr error
	select {
	case <-ctx.Done():
		a.log.Info("signal received: draining", "timeout", a.opts.DrainTimeout, "accepting", a.opts.DrainAccept)
	case <-a.drainReq:
		a.log.Info("drain requested: draining", "timeout", a.opts.DrainTimeout, "accepting", a.opts.DrainAccept)
	case err := <-serveErr:
		runErr = fmt.Errorf("serve: %w", err)
		a.log.Error("listener failed: draining", "err", err)
	}
	a.draining.Store(true)
	for _, q := range a.queues {
		q.stopPolling() // long polls answer now; pulls, acks and nacks go on
	}
	deadline := time.Now().Add(a.opts.DrainTimeout)
	a.waitDrained(ctx, deadline)

	// Stop ingest: requests in flight finish (bounded by the shutdown
	// deadline) before the spool closes.
	sctx, cancel := context.WithDeadline(context.Background(), deadline.Add(2*time.Second))
	_ = a.ingest.ShutdownWithContext(sctx)
	cancel()
	stopForwarders()
	fwg.Wait()
	for _, f := range a.fwds {
		f.cursor.Release()
	}
	a.cb.cursor.Release()
	for _, q := range a.queues {
		q.cursor.Release()
	}
	var errs []error
	errs = append(errs, runErr)
	errs = append(errs, a.sp.Flush())
	cctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(max(time.Until(deadline), time.Second)))
	for _, f := range a.fwds {
		if err := f.spec.Sink.Close(cctx); err != nil {
			a.log.Warn("sink close", "sink", f.spec.Name, "err", err)
		}
	}
	cancel()
	errs = append(errs, a.sp.Close(), a.dl.close())
	for _, q := range a.queues {
		errs = append(errs, q.qlog.close())
	}
	if adminLn != nil {
		actx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = a.admin.ShutdownWithContext(actx)
		cancel()
	}
	if p, ok := strings.CutPrefix(a.opts.Listen, "unix:"); ok {
		os.Remove(p)
	}
	left := int64(0)
	for _, f := range a.fwds {
		left += f.cursor.BacklogBytes()
	}
	a.log.Info("sluice stopped", "undelivered_bytes", left)
	return errors.Join(errs...)
}

// waitDrained returns when every sink's backlog is empty, at the deadline,
// or at a second ctx-independent request.
func (a *Agent) waitDrained(_ context.Context, deadline time.Time) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		empty := true
		for _, f := range a.fwds {
			if f.cursor.BacklogBytes() > 0 {
				empty = false
			}
		}
		if empty && (!a.opts.DrainAccept || a.inflight.Load() == 0) {
			a.log.Info("drained: every backlog is empty")
			return
		}
		if time.Now().After(deadline) {
			a.log.Warn("drain timeout: undelivered messages stay in the spool for the next start")
			return
		}
		<-t.C
	}
}

// RequestDrain starts a drain as SIGTERM would.
func (a *Agent) RequestDrain() {
	a.drainOnce.Do(func() { close(a.drainReq) })
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return "disabled"
	}
	return ln.Addr().String()
}
