package agent

import (
	"container/heap"
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// cbState is where an owed report is.
type cbState uint8

const (
	cbWaiting cbState = iota // some target sink has not passed its message yet
	cbReady                  // in its host's ready queue
	cbSending                // an attempt is in flight
	cbBackoff                // in the retry heap until due
	cbDone                   // sent, given up or dropped
)

// cbReport is one owed report in memory.
type cbReport struct {
	storeSeq uint64   // position in the callback store
	sid      spool.ID // the message's position in the main spool
	id       string   // the message's sluice-id
	url      string
	topic    string
	targets  []string
	pushed   time.Time

	host    *cbHost
	waiting int // target sinks that have not delivered sid yet
	// waitMask has bit i set while forwarder i has not delivered sid
	// (forwarders past 64 are only ever passed by their cursor).
	waitMask uint64
	state    cbState
	attempt  int
	due      time.Time
	heapIdx  int
}

// cbQueue is a FIFO of reports with lazy removal: entries whose report
// left the queue's concern are skipped when they reach the front, and the
// whole queue is compacted once garbage outgrows the live reports, so its
// memory stays within a constant factor of the pending cap.
type cbQueue struct {
	q    []*cbReport
	head int
}

func (f *cbQueue) push(r *cbReport, limit int, alive func(*cbReport) bool) {
	if len(f.q)-f.head > limit {
		live := f.q[:0]
		for _, x := range f.q[f.head:] {
			if alive(x) {
				live = append(live, x)
			}
		}
		clear(f.q[len(live):])
		f.q, f.head = live, 0
	}
	f.q = append(f.q, r)
}

// front drops dead entries at the front and returns the first live one.
func (f *cbQueue) front(alive func(*cbReport) bool) *cbReport {
	for f.head < len(f.q) {
		if r := f.q[f.head]; alive(r) {
			return r
		}
		f.pop()
	}
	return nil
}

func (f *cbQueue) pop() {
	f.q[f.head] = nil
	f.head++
	if f.head == len(f.q) {
		f.q, f.head = f.q[:0], 0
	} else if f.head >= 1024 && f.head > len(f.q)/2 {
		n := copy(f.q, f.q[f.head:])
		clear(f.q[n:])
		f.q, f.head = f.q[:n], 0
	}
}

func notDone(r *cbReport) bool   { return r.state != cbDone }
func isReady(r *cbReport) bool   { return r.state == cbReady }
func isWaiting(r *cbReport) bool { return r.state == cbWaiting }

// cbHost is one receiver host (URL host:port): its share of the workers
// and its reports, oldest first (the drop policy takes from the host with
// the most pending).
type cbHost struct {
	name     string
	all      cbQueue // live reports, by store sequence
	ready    cbQueue
	live     int
	inflight int
	inRing   bool
}

// retryHeap orders reports in backoff by due time.
type retryHeap []*cbReport

func (h retryHeap) Len() int           { return len(h) }
func (h retryHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h retryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *retryHeap) Push(x any) { r := x.(*cbReport); r.heapIdx = len(*h); *h = append(*h, r) }
func (h *retryHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	r.heapIdx = -1
	return r
}

type cbResult struct {
	r   *cbReport
	err error
}

// dispatcher owns every owed report; one goroutine (run) drives it, so it
// needs no locks. Work per event is O(1) amortized per report touched:
// a sink acknowledgement pops that sink's FIFO up to its cursor, a retry
// pops the heap, a send takes the next host in round-robin order.
type dispatcher struct {
	cb      *callbacks
	workers int // attempts in flight at most
	perHost int // attempts in flight per host at most
	max     int // owed reports held at most

	live    int
	order   cbQueue    // live reports by store sequence (compaction)
	targets []cbTarget // the forwarders, then the queues
	sinks   []cbQueue  // per target: reports waiting for it, by spool sequence
	// bySeq finds a waiting report by its message's spool sequence, for
	// deliveries ahead of a cursor (a stuck topic holds it below).
	bySeq    map[uint64]*cbReport
	hosts    map[string]*cbHost
	ring     []*cbHost // hosts with ready work and a free slot, round robin
	retry    retryHeap
	inflight int
	results  chan cbResult
	wg       sync.WaitGroup

	readTo  uint64   // last store sequence handed over by the loader
	ackedTo uint64   // store cursor position set by compaction
	tombs   []uint64 // done reports not yet tombstoned
	dropLog time.Time
	dropN   int
}

// cbTarget is a sink a report waits for: a forwarder (delivered) or a
// queue (acknowledged by a consumer or dead-lettered). Either resolves
// messages up to its cursor and, past it, some ahead of it.
type cbTarget interface {
	targetName() string
	resolvedThrough() uint64         // every message up to here is resolved
	resolvedAhead(sid spool.ID) bool // sid is resolved although above resolvedThrough
	takeAhead() []uint64             // messages resolved ahead since the last call
}

func newDispatcher(cb *callbacks) *dispatcher {
	var targets []cbTarget
	for _, f := range cb.a.fwds {
		targets = append(targets, f)
	}
	for _, q := range cb.a.queues {
		targets = append(targets, q)
	}
	return &dispatcher{
		cb: cb, workers: cb.workers, perHost: cb.perHost, max: cb.maxPending,
		targets: targets,
		sinks:   make([]cbQueue, len(targets)),
		hosts:   map[string]*cbHost{},
		bySeq:   map[uint64]*cbReport{},
		results: make(chan cbResult),
	}
}

func (d *dispatcher) limit() int { return 2*d.max + 1024 }

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	h := strings.ToLower(u.Host)
	if u.Port() == "" {
		h += map[string]string{"https": ":443"}[u.Scheme]
	}
	return h
}

// add takes an owed report loaded from the store.
func (d *dispatcher) add(r *cbReport) {
	if d.live >= d.max {
		d.dropOne("pending cap")
	}
	name := hostOf(r.url)
	h := d.hosts[name]
	if h == nil {
		h = &cbHost{name: name}
		d.hosts[name] = h
	}
	r.host, r.heapIdx = h, -1
	h.live++
	h.all.push(r, d.limit(), notDone)
	d.live++
	d.order.push(r, d.limit(), notDone)
	d.cb.pending.Set(float64(d.live))
	// A push a machine crash cut from the spool's tail is not waited for:
	// its report is final now (statusAt: unknown, spool_cut).
	cut := d.cb.a.sp.Cut(r.sid)
	for i, f := range d.targets {
		if cut || r.targets != nil && !containsStr(r.targets, f.targetName()) {
			continue // not a target, or a sink no longer configured: resolved
		}
		if f.resolvedThrough() < r.sid.Seq && !f.resolvedAhead(r.sid) {
			d.sinks[i].push(r, d.limit(), isWaiting)
			r.waiting++
			if i < 64 {
				r.waitMask |= 1 << i
			}
		}
	}
	if r.waiting == 0 {
		d.makeReady(r)
	} else if r.waitMask != 0 {
		d.bySeq[r.sid.Seq] = r
	}
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// acked pops, for every sink, the reports its cursor has passed, and
// takes the reports of messages it delivered ahead of its cursor: a report
// whose last target delivered it is ready.
func (d *dispatcher) acked() {
	for i, f := range d.targets {
		ahead := f.takeAhead()
		if i >= 64 {
			ahead = nil // no waitMask bit to count it once: the cursor passes these
		}
		for _, seq := range ahead {
			if r := d.bySeq[seq]; r != nil && r.state == cbWaiting {
				d.passed(r, i)
			}
		}
		q := &d.sinks[i]
		if q.front(isWaiting) == nil {
			continue
		}
		upTo := f.resolvedThrough()
		for r := q.front(isWaiting); r != nil && r.sid.Seq <= upTo; r = q.front(isWaiting) {
			q.pop()
			d.passed(r, i)
		}
	}
}

// passed notes that forwarder i delivered r's message (once per sink).
func (d *dispatcher) passed(r *cbReport, i int) {
	if i < 64 {
		if r.waitMask&(1<<i) == 0 {
			return // delivered ahead of the cursor, counted then
		}
		r.waitMask &^= 1 << i
	}
	if r.waiting--; r.waiting == 0 {
		delete(d.bySeq, r.sid.Seq)
		d.makeReady(r)
	}
}

func (d *dispatcher) makeReady(r *cbReport) {
	r.state = cbReady
	h := r.host
	h.ready.push(r, d.limit(), isReady)
	d.schedule(h)
}

// schedule puts h in the round robin when it has ready work and a slot.
func (d *dispatcher) schedule(h *cbHost) {
	if !h.inRing && h.inflight < d.perHost && h.ready.front(isReady) != nil {
		h.inRing = true
		d.ring = append(d.ring, h)
	}
}

// dispatch starts attempts while workers are free, one report per host in
// turn.
func (d *dispatcher) dispatch(ctx context.Context) {
	for d.inflight < d.workers && len(d.ring) > 0 && ctx.Err() == nil {
		h := d.ring[0]
		d.ring[0] = nil
		d.ring = d.ring[1:]
		h.inRing = false
		r := h.ready.front(isReady)
		if r == nil || h.inflight >= d.perHost {
			continue
		}
		h.ready.pop()
		d.start(ctx, r)
		d.schedule(h) // back at the end of the ring
	}
}

func (d *dispatcher) start(ctx context.Context, r *cbReport) {
	body, deliveryID, final := d.cb.reportBody(r)
	if !final {
		// Its dead letter was replayed: the message is on its way again
		// and the report waits for that outcome, without an attempt.
		r.state, r.due = cbBackoff, time.Now().Add(max(d.cb.backoff, time.Second))
		heap.Push(&d.retry, r)
		return
	}
	r.state = cbSending
	r.attempt++
	r.host.inflight++
	d.inflight++
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		err := d.cb.post(ctx, r.url, deliveryID, body)
		select {
		case d.results <- cbResult{r, err}:
		case <-ctx.Done():
		}
	}()
}

func (d *dispatcher) result(res cbResult) {
	r, h := res.r, res.r.host
	h.inflight--
	d.inflight--
	defer d.schedule(h)
	if r.state == cbDone { // dropped while in flight
		d.forget(h)
		return
	}
	cb := d.cb
	switch {
	case res.err == nil:
		cb.sent.Inc()
		d.finish(r)
	case errors.Is(res.err, errCallbackNotAllowed):
		cb.failed.Inc()
		cb.gaveUp.Inc()
		cb.log.Warn("callback refused at dial time", "id", r.id, "err", res.err)
		d.finish(r)
	case r.attempt >= cb.attempts:
		cb.failed.Inc()
		cb.gaveUp.Inc()
		cb.log.Warn("callback given up", "id", r.id, "host", r.host.name, "attempts", r.attempt, "err", res.err)
		d.finish(r)
	default:
		cb.failed.Inc()
		wait := cb.backoff
		for i := 1; i < r.attempt && wait < 30*time.Second; i++ {
			wait *= 2
		}
		r.state, r.due = cbBackoff, time.Now().Add(min(wait, 30*time.Second))
		heap.Push(&d.retry, r)
	}
}

// due moves reports whose retry time came back to their host's queue.
func (d *dispatcher) due(now time.Time) {
	for len(d.retry) > 0 && !d.retry[0].due.After(now) {
		r := heap.Pop(&d.retry).(*cbReport)
		d.makeReady(r)
	}
}

func (d *dispatcher) nextDue() (time.Duration, bool) {
	if len(d.retry) == 0 {
		return 0, false
	}
	return max(time.Until(d.retry[0].due), 0), true
}

// finish marks r done: tombstoned at the next flush unless compaction
// passes it first.
func (d *dispatcher) finish(r *cbReport) {
	if r.heapIdx >= 0 {
		heap.Remove(&d.retry, r.heapIdx)
	}
	if d.bySeq[r.sid.Seq] == r {
		delete(d.bySeq, r.sid.Seq)
	}
	r.state = cbDone
	d.live--
	r.host.live--
	d.cb.pending.Set(float64(d.live))
	d.tombs = append(d.tombs, r.storeSeq)
	d.forget(r.host)
}

func (d *dispatcher) forget(h *cbHost) {
	if h.live == 0 && h.inflight == 0 && d.hosts[h.name] == h {
		delete(d.hosts, h.name)
	}
}

// dropOne drops the oldest report of the host with the most pending, so a
// dead receiver pays with its own reports.
func (d *dispatcher) dropOne(why string) {
	var worst *cbHost
	for _, h := range d.hosts {
		if h.live > 0 && (worst == nil || h.live > worst.live) {
			worst = h
		}
	}
	if worst == nil {
		return
	}
	r := worst.all.front(notDone)
	if r == nil {
		return
	}
	worst.all.pop()
	d.drop(r, why)
}

func (d *dispatcher) drop(r *cbReport, why string) {
	d.finish(r)
	d.cb.dropped.Inc()
	d.dropN++
	if time.Since(d.dropLog) > 10*time.Second {
		d.cb.log.Warn("callback reports dropped", "reason", why, "dropped", d.dropN,
			"last_id", r.id, "host", r.host.name, "pending", d.live)
		d.dropLog, d.dropN = time.Now(), 0
	}
}

// evicted drops the owed reports the store's drop_oldest policy removed
// from disk (its cursor moved past them).
func (d *dispatcher) evicted(storeAcked uint64) {
	if storeAcked <= d.ackedTo {
		return
	}
	for r := d.order.front(notDone); r != nil && r.storeSeq <= storeAcked; r = d.order.front(notDone) {
		d.order.pop()
		d.drop(r, "store full")
	}
	d.ackedTo = storeAcked
}

// compact acknowledges the store cursor over the done prefix and writes
// tombstones for done reports behind the first owed one.
func (d *dispatcher) compact(ctx context.Context) {
	cur := d.cb.storeCur
	d.evicted(cur.Acked())
	upTo := d.readTo
	if r := d.order.front(notDone); r != nil {
		upTo = r.storeSeq - 1
	}
	if upTo > d.ackedTo {
		if err := cur.Ack(upTo); err != nil {
			d.cb.log.Error("callback store cursor", "err", err)
		} else {
			d.ackedTo = upTo
		}
	}
	keep := d.tombs[:0]
	for _, s := range d.tombs {
		if s > d.ackedTo {
			keep = append(keep, s)
		}
	}
	d.tombs = keep
	if len(d.tombs) == 0 {
		return
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := d.cb.store.Append(actx, encodeCBTombstone(d.tombs)); err != nil {
		// Not fatal: those reports may be sent again after a restart.
		d.cb.log.Warn("callback store: tombstones not written", "reports", len(d.tombs), "err", err)
	}
	d.tombs = d.tombs[:0]
}

// run is the dispatch loop. It returns when ctx is done, after every
// attempt in flight returned (they use ctx), writing the last tombstones.
func (d *dispatcher) run(ctx context.Context, loaded <-chan cbLoad) {
	defer func() {
		d.wg.Wait()
		fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		d.compact(fctx)
		cancel()
	}()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		changed := d.cb.a.records.wait()
		var timerC <-chan time.Time
		if wait, ok := d.nextDue(); ok {
			timer.Reset(wait)
			timerC = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case l := <-loaded:
			for _, r := range l.reports {
				d.add(r)
			}
			d.readTo = max(d.readTo, l.last)
		case res := <-d.results:
			d.result(res)
		case <-changed:
			d.acked()
		case <-timerC:
			d.due(time.Now())
		case <-tick.C:
			d.acked() // cursors moved by drop policies do not notify
			d.compact(ctx)
		}
		if len(d.tombs) >= 4096 {
			d.compact(ctx)
		}
		d.dispatch(ctx)
	}
}
