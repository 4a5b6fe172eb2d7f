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
	// Callbacks is the callback report store (see CallbackStoreOptions);
	// the agent closes it. Nil: the agent opens <Spool dir>/callbacks.
	Callbacks *spool.Spool
	// Idempotency is the durable Idempotency-Key index (options:
	// IdempotencyStoreOptions); the agent closes it. Default: the agent
	// opens <Spool.Dir()>/idempotency itself.
	Idempotency *spool.Spool
	Sinks       []SinkSpec
	Queues      []QueueSpec // local pull queues (queue.go)
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
	// CallbackMaxBytes caps the callback store when the agent opens it;
	// default 64 MiB.
	CallbackMaxBytes int64
	// CallbackMaxPending caps the owed reports held in memory; past it the
	// oldest report of the host with the most pending is dropped (counted).
	// Default 100000.
	CallbackMaxPending int

	// OrphanCursors says what happens to spool cursors of sinks no longer
	// configured: "keep" (default; they hold their backlog, surfaced as
	// orphans) or "remove" (deleted at start, backlog given up).
	OrphanCursors string

	DrainTimeout time.Duration // 20 s
	DrainAccept  bool          // keep accepting pushes while draining
	RecordCache  int           // delivery-report cache entries, default 65536

	// REST Proxy-compatible produce API (restproxy.go).
	RestProxyAck     string // when it answers: "spooled" (default, after the durable local write) or "delivered"
	RestProxyCluster string // the one cluster id /v3/clusters exposes; default "sluice"

	// FrontEnds are further ingest protocols (accept.go), served from Run
	// until the drain ends.
	FrontEnds []FrontEnd

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
	def(&o.CallbackMaxPending, 100000)
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
	idemSt    *idemStore
	guard     *callbackGuard
	cb        *callbacks
	m         *agentMetrics
	inflight  atomic.Int64
	res       reservations // body.go

	controlToken string     // control.go
	dlStuck      stuckLanes // deadletter_stuck.go

	statusCalls atomic.Int64 // statusOf evaluations (dispatch cost, for tests)

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
	var err error
	if a.controlToken, err = newControlToken(); err != nil {
		return nil, err
	}
	a.records = newRecords(o.RecordCache)
	if err := a.records.readKept(o.Spool.Dir()); err != nil {
		return nil, fmt.Errorf("agent: kept ids: %w", err)
	}
	if err := a.records.loadKept(o.Spool); err != nil {
		return nil, fmt.Errorf("agent: kept ids: %w", err)
	}
	if err := a.records.rewriteKept(); err != nil {
		// Statuses stay right until a restart; a full disk must not stop the start.
		a.log.Warn("cannot rewrite the kept-id log; chained ids may read unknown after a restart", "err", err)
	}
	a.idem = newIdempotency(o.IdempotencyWindow, o.IdempotencyMax)
	if o.Idempotency == nil {
		sp, err := openIdemSpool(o.Spool, o.IdempotencyMax, o.Logger)
		if err != nil {
			return nil, fmt.Errorf("agent: idempotency index: %w", err)
		}
		o.Idempotency, a.opts.Idempotency = sp, sp
	}
	st, err := openIdemStore(o.Spool, o.Idempotency, o.IdempotencyWindow, o.Logger.With("component", "idempotency"))
	if err != nil {
		o.Idempotency.Close()
		return nil, err
	}
	if err := st.load(a.idem, time.Now()); err != nil {
		st.close()
		return nil, fmt.Errorf("agent: reload idempotency keys: %w", err)
	}
	a.idemSt = st
	ok := false
	defer func() {
		if !ok { // the caller closes Spool and DeadLetter, not this
			st.close()
			a.closeStatusLogs()
		}
	}()
	// Every name a dead letter can be for: sinks and queues (a discard at
	// the log's cap raises each one's forgotten watermark).
	var sinkNames []string
	for _, spec := range o.Sinks {
		sinkNames = append(sinkNames, spec.Name)
	}
	for _, spec := range o.Queues {
		sinkNames = append(sinkNames, spec.Name)
	}
	dl, err := openDeadLetters(o.DeadLetter, a.m, o.Logger, sinkNames, o.Spool, a.seqOfID)
	if err != nil {
		return nil, err
	}
	a.dl = dl
	for _, spec := range o.Sinks {
		if len(spec.Name) > MaxSinkNameBytes {
			return nil, fmt.Errorf("sink %s: name longer than %d bytes", spec.Name, MaxSinkNameBytes)
		}
		if err := ValidateGlobs(spec.Topics); err != nil {
			return nil, fmt.Errorf("sink %s: %w", spec.Name, err)
		}
		c, err := o.Spool.Cursor(spec.Name, spool.CursorOptions{})
		if err != nil {
			return nil, fmt.Errorf("sink %s: %w", spec.Name, err)
		}
		fw := newForwarder(a, spec, c)
		a.fwds = append(a.fwds, fw)
		if err := fw.openLogs(); err != nil { // statuslog.go
			return nil, fmt.Errorf("sink %s: %w", spec.Name, err)
		}
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
	if a.cb, err = newCallbacks(a, a.guard); err != nil {
		return nil, err
	}
	if err := a.orphans(); err != nil {
		return nil, err
	}
	a.m.register(a)
	a.registerQueueMetrics()
	a.ingest = a.newIngestServer()
	a.admin = a.newAdminServer()
	ok = true
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
	tokenCtx, stopToken := context.WithCancel(context.Background())
	defer func() { stopToken(); a.removeControlToken() }()
	if err := a.writeControlToken(); err != nil {
		go a.keepWritingControlToken(tokenCtx, err) // a full disk must not stop the start
	}
	ln, err := listen(a.opts.Listen)
	if err != nil {
		a.closeStatusLogs()
		return fmt.Errorf("ingest listen: %w", err)
	}
	var adminLn net.Listener
	if a.opts.AdminListen != "-" {
		if adminLn, err = listen(a.opts.AdminListen); err != nil {
			ln.Close()
			a.closeStatusLogs()
			return fmt.Errorf("admin listen: %w", err)
		}
	}
	a.guard.setSelf(ln.Addr(), addrOrNil(adminLn)) // before any push can name them
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
	fwg.Add(2)
	go func() { defer fwg.Done(); a.cb.run(fctx) }()
	go func() { defer fwg.Done(); a.warnOrphans(fctx) }()
	fwg.Add(2)
	go func() { defer fwg.Done(); a.idemSt.runCopier(fctx, 20*time.Millisecond) }()
	go func() {
		defer fwg.Done()
		a.idemSt.runExpiry(fctx, max(min(a.opts.IdempotencyWindow/4, 10*time.Second), 10*time.Millisecond))
	}()
	serveErr := make(chan error, 2+len(a.opts.FrontEnds))
	go func() { serveErr <- a.ingest.Serve(ln) }()
	if adminLn != nil {
		go func() { serveErr <- a.admin.Serve(adminLn) }()
	}
	feCtx, stopFrontEnds := context.WithCancel(context.Background())
	var fewg sync.WaitGroup
	for _, fe := range a.opts.FrontEnds {
		fewg.Add(1)
		go func() {
			defer fewg.Done()
			a.log.Info("front-end started", "front_end", fe.Name(), "listen", fe.Addr())
			if err := fe.Serve(feCtx, a); err != nil {
				serveErr <- fmt.Errorf("%s front-end: %w", fe.Name(), err)
			}
		}()
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
	stopFrontEnds()
	fewg.Wait()
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
	errs = append(errs, a.closeStatusLogs()) // while the spool directory is still locked
	errs = append(errs, a.sp.Close(), a.dl.close(), a.cb.close(), a.idemSt.close(), a.records.closeKept())
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

// orphans applies OrphanCursors to the cursors of sinks that are no longer
// configured, at start.
func (a *Agent) orphans() error {
	for _, ci := range a.sp.Cursors() {
		switch {
		case ci.InUse:
		case a.opts.OrphanCursors == "remove":
			if err := a.sp.RemoveCursor(ci.Name); err != nil {
				return fmt.Errorf("remove orphan cursor %s: %w", ci.Name, err)
			}
			a.log.Warn("spool cursor of a sink that is no longer configured removed; its backlog is given up (SLUICE_SPOOL_ORPHAN_CURSORS=remove)",
				"cursor", ci.Name, "backlog_messages", ci.Backlog.Records, "backlog_bytes", ci.Backlog.Bytes)
		default:
			a.log.Warn("spool cursor of a sink that is no longer configured is kept and holds its backlog: the spool fills behind it; remove it with 'sluice spool cursor rm' or SLUICE_SPOOL_ORPHAN_CURSORS=remove",
				"cursor", ci.Name, "backlog_bytes", ci.Backlog.Bytes)
		}
	}
	return nil
}

// warnOrphans repeats the orphan warning every 5 minutes while an orphan
// cursor holds a backlog: a full spool must not come as a surprise.
func (a *Agent) warnOrphans(ctx context.Context) {
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, ci := range a.sp.Cursors() {
			if !ci.InUse && ci.Backlog.Bytes > 0 {
				a.log.Warn("orphan spool cursor still holds its backlog", "cursor", ci.Name, "backlog_bytes", ci.Backlog.Bytes)
			}
		}
	}
}

// RequestDrain starts a drain as SIGTERM would.
func (a *Agent) RequestDrain() {
	a.drainOnce.Do(func() { close(a.drainReq) })
}

func addrOrNil(ln net.Listener) net.Addr {
	if ln == nil {
		return nil
	}
	return ln.Addr()
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return "disabled"
	}
	return ln.Addr().String()
}
