package agent

import (
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// QueueSpec is one local work queue (a sink of type queue): its messages
// stay in the spool until a consumer pulls and acknowledges them. Zero
// values mean the defaults noted.
type QueueSpec struct {
	Name            string
	Topics          []string      // globs; default "*"
	MaxBacklogBytes int64         // 0 = only the spool cap
	BacklogPolicy   string        // "reject" (default) or "drop_oldest"
	MaxAge          time.Duration // 0 = off; older messages are dead-lettered as "expired" instead of handed out
	Visibility      time.Duration // default lease; default 30 s
	MaxAttempts     int           // deliveries before dead-lettering (reason max_attempts); 0 = unlimited
	Ordered         bool          // per-key ordering: one leased message per key at a time
	// Log is the queue's own durable log of deliveries and
	// acknowledgements (a small spool, e.g. <spool>/queues/<name>); the
	// agent closes it. Required.
	Log *spool.Spool
}

// Bounds of the pull API and of what a queue holds in memory.
const (
	queueMaxPull       = 1000
	queueMaxWait       = 20 * time.Second
	queueMinVisibility = time.Second
	queueMaxVisibility = 12 * time.Hour
	queueMaxDelay      = 12 * time.Hour

	// Read-ahead: unresolved messages held in memory. Past either bound
	// the queue stops reading the spool until consumers acknowledge.
	queueMaxHeldBytes = 32 << 20
	queueMaxHeld      = 100000
	// Resolved-but-not-yet-contiguous positions remembered (a few bytes
	// each): a message leased for very long holds the cursor back; past
	// this the queue stops reading too.
	queueMaxSlots = 1 << 20
)

// Entry states.
const (
	qAvailable = iota // in the available heap
	qWaiting          // ordered: behind an earlier message of its key
	qLeased           // handed out; in the timer heap until its deadline
	qDelayed          // nacked with a delay; in the timer heap
	qAcking           // an ack is being made durable
	qDying            // being dead-lettered
)

type qslot struct {
	seq   uint64
	epoch uint32
	done  bool
	// resolved: done by this queue (acknowledged or dead-lettered), not
	// because the record is another sink's: only these go into afterDrop.
	resolved bool
	noted    bool // in afterDrop
}

type qentry struct {
	seq      uint64
	epoch    uint32
	id       string
	raw      []byte // the stored record (own copy)
	msg      Msg    // decoded from raw
	size     int
	state    int
	attempt  uint32 // deliveries so far
	gen      uint64 // lease generation of the current lease
	deadline time.Time
	slot     *qslot
	idx      int // index in the heap it is in, -1 when none
	reason   string
}

// queue is one local work queue: it reads its spool cursor, keeps the
// unresolved messages in memory (bounded read-ahead), leases them to
// consumers, and records deliveries and acknowledgements in its own log
// so that both survive restarts. The spool cursor is acknowledged up to
// the lowest unresolved message, so the queue holds the spool exactly as
// a sink with the same backlog would.
type queue struct {
	a      *Agent
	spec   QueueSpec
	cursor *spool.Cursor
	qlog   *queueLog
	lg     *slog.Logger
	m      *queueMetrics

	mu        sync.Mutex
	cond      *sync.Cond // reader waits for room
	entries   map[uint64]*qentry
	slots     []*qslot
	slotsHead int
	through   qpos // every message up to here is resolved (the slots let go, and what the log said at open)
	avail     seqHeap
	timers    deadlineHeap
	keys      map[string][]*qentry // ordered: unresolved messages per key, in order
	held      int64
	inFlight  int
	// aheadNew lists messages resolved while an earlier one held the
	// cursor below them, not yet taken by the callback dispatcher
	// (takeAhead), at most aheadMax.
	aheadNew  []uint64
	dying     []*qentry
	wake      chan struct{} // closed when messages become available
	gen       uint64
	stopped   bool
	stopPolls chan struct{}
	stopOnce  sync.Once

	// afterDrop: messages a consumer acknowledged although a drop policy
	// had skipped the cursor past them while the queue held them (the
	// oldest forgotten past afterDropMax), kept across restarts in
	// afterDropLog (SPOOL_DIR/delivered-after-drop.<queue>), as a
	// forwarder keeps its own.
	afterDrop    *seqSet
	afterDropLog *seqLog
	droppedSeen  uint64 // the cursor's DroppedTotal at the last look for them

	// State read back from the log for messages not read yet.
	restoredAcked    map[uint64]uint32 // seq -> epoch
	restoredAttempts map[uint64]attemptRec
	restoredDelays   map[uint64]delayRec

	intern interner // reader goroutine only
}

func newQueue(a *Agent, spec QueueSpec, c *spool.Cursor) (*queue, error) {
	if spec.Log == nil {
		return nil, errors.New("agent: queue " + spec.Name + ": Log is required")
	}
	q := &queue{
		a: a, spec: spec, cursor: c, lg: a.log.With("queue", spec.Name),
		entries: map[uint64]*qentry{}, keys: map[string][]*qentry{},
		wake: make(chan struct{}), stopPolls: make(chan struct{}), intern: interner{},
	}
	// add copies what it keeps of each record: the reader's buffer can be
	// reused.
	c.ReuseBuffer()
	q.cond = sync.NewCond(&q.mu)
	q.m = newQueueMetrics(a.m.set, spec.Name)
	ql, st, err := openQueueLog(spec.Log, spec.Name, c.Acked(), a.sp.Epoch(), func(seq uint64) bool { return c.Dropped(seq) || c.DropForgotten(seq) })
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", spec.Name, err)
	}
	q.qlog = ql
	q.restoredAcked, q.restoredAttempts, q.restoredDelays, q.through = st.acked, st.attempts, st.delays, st.through
	q.gen = randUint64()
	q.afterDrop = newBoundedMap[uint64, uint32](afterDropMax)
	q.mu.Lock()
	defer q.mu.Unlock()
	// An entry of this open's epoch or later is from another spool that
	// was in this directory (removed and created again).
	epoch := a.sp.Epoch()
	q.afterDropLog, err = openSeqLog(filepath.Join(a.sp.Dir(), AfterDropFilePrefix+spec.Name), q.afterDrop, &q.mu, 0, q.lg,
		func(id spool.ID) bool { return id.Epoch >= epoch })
	if err != nil {
		ql.close()
		return nil, fmt.Errorf("queue %s: %w", spec.Name, err)
	}
	// Acknowledged, then skipped by a drop before the queue noted it (a
	// kill -9 in between): the log's ack says it.
	var ids []spool.ID
	for seq, ep := range st.droppedAcked {
		if !has(q.afterDrop, spool.ID{Seq: seq, Epoch: ep}) {
			ids = append(ids, spool.ID{Seq: seq, Epoch: ep})
		}
	}
	slices.SortFunc(ids, func(a, b spool.ID) int { return cmp.Compare(a.Seq, b.Seq) })
	q.afterDropLog.add(ids)
	return q, nil
}

// run reads the queue's messages from the spool until ctx ends, and runs
// the lease timers and dead-lettering.
func (q *queue) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); q.maintain(ctx) }()
	go func() {
		<-ctx.Done()
		q.mu.Lock()
		q.stopped = true
		q.cond.Broadcast()
		q.mu.Unlock()
	}()
	for ctx.Err() == nil {
		q.mu.Lock()
		for !q.stopped && (q.held > queueMaxHeldBytes || len(q.entries) >= queueMaxHeld || len(q.slots)-q.slotsHead >= queueMaxSlots) {
			q.cond.Wait()
		}
		q.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		recs, err := q.cursor.Read(rctx, 1000, 1<<20)
		cancel()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, spool.ErrClosed) {
				break
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				// The spool could not be read (no file descriptor
				// free, EIO): nothing moved; try again in a second.
				q.lg.Error("queue: read spool", "err", err)
				if !sleepCtx(ctx, time.Second) {
					break
				}
			}
			continue
		}
		q.add(recs)
		q.advance()
	}
	wg.Wait()
}

// add indexes records read from the spool.
func (q *queue) add(recs []spool.Record) {
	spoolID := q.a.sp.SpoolID()
	now := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	added := false
	for _, r := range recs {
		s := &qslot{seq: r.ID.Seq, epoch: r.ID.Epoch}
		q.slots = append(q.slots, s)
		if !r.Corrupt && len(r.Data) > 0 && !recordTargets(r.Data, q.spec.Name, &q.intern) {
			s.done = true
			continue
		}
		if q.through.covers(r.ID.Seq, r.ID.Epoch) { // resolved before a restart; the cursor was not persisted past it
			delete(q.restoredAcked, r.ID.Seq)
			delete(q.restoredAttempts, r.ID.Seq)
			delete(q.restoredDelays, r.ID.Seq)
			s.done = true
			continue
		}
		e := &qentry{seq: r.ID.Seq, epoch: r.ID.Epoch, id: formatID(spoolID, r.ID), slot: s, idx: -1}
		dl, delayed := q.restoredDelays[r.ID.Seq]
		delete(q.restoredDelays, r.ID.Seq)
		if ep, ok := q.restoredAcked[r.ID.Seq]; ok {
			delete(q.restoredAcked, r.ID.Seq)
			if ep == r.ID.Epoch {
				s.done, s.resolved = true, true
				q.noteAheadLocked(s.seq) // resolved before a restart, maybe above an unresolved one
				continue
			}
		}
		if at, ok := q.restoredAttempts[r.ID.Seq]; ok {
			delete(q.restoredAttempts, r.ID.Seq)
			if at.epoch == r.ID.Epoch {
				e.attempt = at.attempt
			}
		}
		// A nack's delay holds across a restart when it still runs and
		// nothing delivered the message since.
		delayed = delayed && dl.epoch == r.ID.Epoch && dl.attempt == e.attempt && dl.until > now.UnixNano()
		e.raw = bytes.Clone(r.Data)
		q.entries[e.seq] = e
		if r.Corrupt || decodeMsg(e.raw, &e.msg) != nil {
			e.msg = Msg{}
			q.dieLocked(e, "corrupt")
			continue
		}
		if e.msg.ID != "" {
			e.id = e.msg.ID
		}
		e.size = len(e.raw)
		q.held += int64(e.size)
		switch {
		case q.spec.MaxAge > 0 && now.Sub(time.Unix(0, e.msg.Time)) > q.spec.MaxAge:
			q.dieLocked(e, "expired")
		case q.spec.MaxAttempts > 0 && int(e.attempt) >= q.spec.MaxAttempts:
			q.dieLocked(e, "max_attempts")
		case q.spec.Ordered && e.msg.Key != nil:
			k := string(e.msg.Key)
			q.keys[k] = append(q.keys[k], e)
			switch {
			case len(q.keys[k]) > 1:
				e.state = qWaiting
			case delayed:
				q.delayLocked(e, time.Unix(0, dl.until))
			default:
				q.makeAvailableLocked(e)
				added = true
			}
		case delayed:
			q.delayLocked(e, time.Unix(0, dl.until))
		default:
			q.makeAvailableLocked(e)
			added = true
		}
	}
	if added {
		q.wakeLocked()
	}
}

// recordTargets reports whether a stored message record targets name,
// decoding no more than needed.
func recordTargets(b []byte, name string, in *interner) bool {
	var m Msg
	if decodeMsgInterned(b, &m, in) != nil {
		return true // undecodable: dead-lettered by every consumer of it
	}
	return m.targets(name)
}

func (q *queue) makeAvailableLocked(e *qentry) {
	e.state = qAvailable
	heap.Push(&q.avail, e)
}

// delayLocked holds e back until the deadline.
func (q *queue) delayLocked(e *qentry, until time.Time) {
	e.state, e.deadline = qDelayed, until
	heap.Push(&q.timers, e)
}

func (q *queue) wakeLocked() {
	close(q.wake)
	q.wake = make(chan struct{})
}

// dieLocked hands e to the maintenance goroutine for dead-lettering.
func (q *queue) dieLocked(e *qentry, reason string) {
	e.state, e.reason = qDying, reason
	q.dying = append(q.dying, e)
}

// resolveLocked forgets e (acknowledged or dead-lettered) and, for an
// ordered key, makes the key's next message available.
func (q *queue) resolveLocked(e *qentry) {
	if e.state == qLeased || e.state == qAcking {
		q.inFlight--
	}
	if e.idx >= 0 {
		if e.state == qAvailable {
			heap.Remove(&q.avail, e.idx)
		} else {
			heap.Remove(&q.timers, e.idx)
		}
	}
	e.state = -1
	e.slot.done, e.slot.resolved = true, true
	if q.cursor.DroppedTotal() > 0 {
		q.noteAfterDropLocked(e.slot) // acknowledged after a drop skipped it
	}
	q.noteAheadLocked(e.seq)
	delete(q.entries, e.seq)
	q.held -= int64(e.size)
	if q.spec.Ordered && e.msg.Key != nil {
		k := string(e.msg.Key)
		list := q.keys[k]
		for i, x := range list {
			if x == e {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(q.keys, k)
		} else {
			q.keys[k] = list
			if list[0].state == qWaiting {
				q.makeAvailableLocked(list[0])
				q.wakeLocked()
			}
		}
	}
	q.cond.Broadcast()
}

// returnLocked gives a message back after an expired lease or a nack: it
// is available again at once, or after delay, or dead-lettered when it
// used up its attempts.
func (q *queue) returnLocked(e *qentry, delay time.Duration, now time.Time) {
	if e.state == qLeased || e.state == qAcking {
		q.inFlight--
	}
	if e.idx >= 0 {
		heap.Remove(&q.timers, e.idx)
	}
	e.gen = 0
	switch {
	case q.spec.MaxAttempts > 0 && int(e.attempt) >= q.spec.MaxAttempts:
		q.dieLocked(e, "max_attempts")
	case delay > 0:
		q.delayLocked(e, now.Add(delay))
	default:
		q.makeAvailableLocked(e)
		q.wakeLocked()
	}
}

// lease is one message handed out by take.
type lease struct {
	e       *qentry
	receipt string
	attempt uint32
}

// take leases up to max available messages for vis.
func (q *queue) take(max int, vis time.Duration) []lease {
	now := time.Now()
	q.mu.Lock()
	var out []lease
	for len(out) < max && q.avail.Len() > 0 {
		e := heap.Pop(&q.avail).(*qentry)
		if q.spec.MaxAge > 0 && now.Sub(time.Unix(0, e.msg.Time)) > q.spec.MaxAge {
			q.dieLocked(e, "expired")
			continue
		}
		e.attempt++
		q.gen++
		e.gen = q.gen
		e.state, e.deadline = qLeased, now.Add(vis)
		heap.Push(&q.timers, e)
		q.inFlight++
		if e.attempt > 1 {
			q.m.redeliveries.Inc()
		}
		out = append(out, lease{e: e, attempt: e.attempt, receipt: q.qlog.receipt(e.epoch, e.seq, e.attempt, e.gen)})
	}
	q.mu.Unlock()
	if len(out) > 0 {
		q.m.delivered.Add(len(out))
		recs := make([]attemptRec, len(out))
		for i, l := range out {
			recs[i] = attemptRec{seq: l.e.seq, epoch: l.e.epoch, attempt: l.attempt}
		}
		// Written before the pull is answered. When it cannot be (disk
		// full, I/O error), the pull still goes out: after a restart the
		// count restarts lower, so MAX_ATTEMPTS may be passed, never
		// reached early.
		if err := q.qlog.delivered(recs); err != nil && !errors.Is(err, spool.ErrClosed) {
			q.lg.Warn("queue log: deliveries not recorded (attempt counts may restart lower)", "err", err)
		}
	}
	return out
}

// Outcome of one receipt in ack, nack or extend.
const (
	receiptOK        = ""
	receiptDone      = "already_done" // the message was acknowledged or dead-lettered
	receiptLeaseLost = "lease_lost"   // the lease expired, was given back, or is another consumer's now
)

// findLocked returns the entry a receipt's lease is current for, or why not.
func (q *queue) findLocked(r receipt) (*qentry, string) {
	e, ok := q.entries[r.seq]
	if !ok || e.epoch != r.epoch {
		s := q.slotLocked(r.seq)
		ep, restored := q.restoredAcked[r.seq]
		if q.through.covers(r.seq, r.epoch) || r.seq <= q.cursor.Acked() || (s != nil && s.done && s.epoch == r.epoch) || (restored && ep == r.epoch) {
			return nil, receiptDone
		}
		return nil, receiptLeaseLost
	}
	if e.gen != r.gen || e.attempt != r.attempt {
		return nil, receiptLeaseLost
	}
	switch e.state {
	case qLeased:
		return e, receiptOK
	case qAcking:
		// This lease's ack is being made durable: the receipt repeated in
		// the same call, or an ack retried while the first is written.
		// Should that write fail, the first call gets the error and the
		// message is handed out again when its lease ends.
		return nil, receiptDone
	}
	return nil, receiptLeaseLost
}

// ack resolves the leased messages of rs durably. It returns the outcome
// of each receipt ("" = acknowledged).
func (q *queue) ack(rs []receipt) ([]string, error) {
	out := make([]string, len(rs))
	q.mu.Lock()
	var es []*qentry
	for i, r := range rs {
		e, why := q.findLocked(r)
		out[i] = why
		if e != nil {
			e.state = qAcking
			es = append(es, e)
		}
	}
	q.mu.Unlock()
	if len(es) == 0 {
		return out, nil
	}
	recs := make([]attemptRec, len(es))
	for i, e := range es {
		recs[i] = attemptRec{seq: e.seq, epoch: e.epoch}
	}
	err := q.qlog.acked(recs, func() {
		q.mu.Lock()
		for _, e := range es {
			q.resolveLocked(e)
		}
		q.mu.Unlock()
	})
	if err != nil {
		q.mu.Lock()
		for _, e := range es {
			if e.state == qAcking { // still leased: its lease runs on
				e.state = qLeased
				if e.idx < 0 {
					heap.Push(&q.timers, e)
				}
			}
		}
		q.mu.Unlock()
		return nil, err
	}
	q.m.acked.Add(len(es))
	q.advance()
	q.a.records.notify() // also when resolved ahead of the cursor: statuses and reports wait for it
	return out, nil
}

// nack gives leased messages back, available after delay. A delay is
// recorded in the queue's log before the reply, so that it holds across
// a restart; it takes effect in memory first, so that a checkpoint
// starting meanwhile keeps it.
func (q *queue) nack(rs []receipt, delay time.Duration) []string {
	out := make([]string, len(rs))
	now := time.Now()
	q.mu.Lock()
	n := 0
	var recs []delayRec
	for i, r := range rs {
		e, why := q.findLocked(r)
		out[i] = why
		if e != nil {
			q.returnLocked(e, delay, now)
			n++
			if e.state == qDelayed {
				recs = append(recs, delayRec{seq: e.seq, epoch: e.epoch, attempt: e.attempt, until: e.deadline.UnixNano()})
			}
		}
	}
	q.mu.Unlock()
	q.m.nacked.Add(n)
	if len(recs) > 0 {
		if err := q.qlog.nacked(recs); err != nil {
			// The delay holds until a restart, which hands the messages
			// out at once.
			q.lg.Warn("queue log: nack delay not recorded", "err", err)
		}
	}
	return out
}

// extend sets the leases of rs to end vis from now.
func (q *queue) extend(rs []receipt, vis time.Duration) []string {
	out := make([]string, len(rs))
	deadline := time.Now().Add(vis)
	q.mu.Lock()
	for i, r := range rs {
		e, why := q.findLocked(r)
		out[i] = why
		if e != nil {
			e.deadline = deadline
			heap.Fix(&q.timers, e.idx)
		}
	}
	q.mu.Unlock()
	return out
}

// maintain expires leases, ends delays, dead-letters what must go,
// applies the backlog cap and compacts the log, until ctx ends.
func (q *queue) maintain(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			q.noteDroppedResolved()
			return
		case <-t.C:
		}
		q.expire(time.Now())
		q.deadLetters(ctx)
		q.enforceBacklog() // every tick: see forwarder.policies
		q.noteDroppedResolved()
		if time.Since(last) > time.Second {
			last = time.Now()
			if err := q.qlog.maybeCompact(q.snapshot); err != nil && !errors.Is(err, spool.ErrClosed) {
				q.lg.Warn("queue log compaction failed; retrying", "err", err)
			}
		}
	}
}

// expire ends leases and delays whose deadline passed.
func (q *queue) expire(now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.timers.Len() > 0 && !q.timers[0].deadline.After(now) {
		e := q.timers[0]
		if e.state == qAcking { // its lease ends with the ack, or comes back if the ack fails
			heap.Pop(&q.timers)
			continue
		}
		if e.state == qLeased {
			q.m.expired.Inc()
		}
		q.returnLocked(e, 0, now)
	}
}

// deadLetters writes what is dying to the dead-letter log, then records it
// as resolved in the queue log.
func (q *queue) deadLetters(ctx context.Context) {
	q.mu.Lock()
	dying := q.dying
	q.dying = nil
	q.mu.Unlock()
	for i, e := range dying {
		msg := map[string]string{
			"max_attempts": fmt.Sprintf("delivered %d times without an acknowledgement", e.attempt),
			"expired":      "older than the queue's max age",
			"corrupt":      "record failed its checksum or could not be decoded",
		}[e.reason]
		if err := q.a.dl.add(ctx, q.spec.Name, e.id, e.reason, msg, e.raw); err != nil {
			q.lg.Error("cannot write dead letter; holding the message", "id", e.id, "err", err)
			q.mu.Lock()
			q.dying = append(dying[i:], q.dying...)
			q.mu.Unlock()
			return
		}
		q.lg.Warn("message dead-lettered", "id", e.id, "topic", e.msg.Topic, "reason", e.reason, "attempts", e.attempt)
		resolve := func() {
			q.mu.Lock()
			q.resolveLocked(e)
			q.mu.Unlock()
		}
		// Resolved inside acked once the record is written, so that a
		// checkpoint cannot slip in between and leave it out.
		if err := q.qlog.acked([]attemptRec{{seq: e.seq, epoch: e.epoch}}, resolve); err != nil {
			// At worst the message is dead-lettered again after a restart.
			q.lg.Warn("queue log: dead letter not recorded", "id", e.id, "err", err)
			resolve()
		}
	}
	if len(dying) > 0 {
		q.advance()
		q.a.records.notify()
	}
}

// enforceBacklog applies the queue's own backlog cap with drop_oldest.
// Messages already read stay available; the cursor skips the rest.
func (q *queue) enforceBacklog() {
	if q.spec.MaxBacklogBytes <= 0 || q.spec.BacklogPolicy != "drop_oldest" || q.cursor.BacklogBytes() <= q.spec.MaxBacklogBytes {
		return
	}
	n, err := q.cursor.TrimBacklog(q.spec.MaxBacklogBytes)
	if err != nil {
		q.lg.Error("trimming the queue backlog failed", "err", err)
		return
	}
	if n > 0 {
		q.lg.Warn("queue backlog over its cap: oldest messages dropped (policy drop_oldest)", "dropped", n)
	}
}

// advance acknowledges the spool cursor up to the lowest unresolved
// message.
func (q *queue) advance() {
	q.mu.Lock()
	i := q.slotsHead
	for i < len(q.slots) && q.slots[i].done {
		i++
	}
	if i == q.slotsHead {
		q.mu.Unlock()
		return
	}
	last := q.slots[i-1]
	upTo := last.seq
	if q.through.before(last.seq, last.epoch) {
		q.through = qpos{seq: upTo, epoch: last.epoch}
	}
	if q.cursor.DroppedTotal() > 0 {
		// Resolved before a drop skipped them, and not looked at since
		// (noteDroppedResolved): noted now, before their slots go.
		for _, sl := range q.slots[q.slotsHead:i] {
			q.noteAfterDropLocked(sl)
		}
	}
	clear(q.slots[q.slotsHead:i])
	q.slotsHead = i
	if q.slotsHead > 4096 && q.slotsHead > len(q.slots)/2 {
		q.slots = append(q.slots[:0], q.slots[q.slotsHead:]...)
		q.slotsHead = 0
	}
	q.cond.Broadcast()
	q.mu.Unlock()
	if err := q.cursor.Ack(upTo); err != nil {
		q.lg.Error("cursor ack", "err", err)
	}
	q.a.records.notify()
}

// snapshot returns the state the log must keep: messages resolved above
// the cursor, attempt counts of unresolved ones and the delays of those
// nacked with one.
//
// "Above the cursor" is above the slots let go (through), not above the
// spool cursor's persisted position, which lags by up to
// CursorSyncInterval (and by the moment between letting slots go and
// acknowledging the cursor in advance). through itself goes into the
// checkpoint and covers the difference: after a crash, what the cursor
// hands out again up to through is resolved, not redelivered.
func (q *queue) snapshot() logState {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := newLogState()
	st.through = q.through
	for k, v := range q.restoredAcked {
		st.acked[k] = v
	}
	for k, v := range q.restoredAttempts {
		st.attempts[k] = v
	}
	for k, v := range q.restoredDelays {
		st.delays[k] = v
	}
	for _, e := range q.entries {
		if e.attempt > 0 {
			st.attempts[e.seq] = attemptRec{seq: e.seq, epoch: e.epoch, attempt: e.attempt}
		}
		if e.state == qDelayed {
			st.delays[e.seq] = delayRec{seq: e.seq, epoch: e.epoch, attempt: e.attempt, until: e.deadline.UnixNano()}
		}
	}
	// Messages of this queue acknowledged or dead-lettered, not yet let go
	// by the cursor (a drop may have skipped it past them; the next open
	// reads those for the delivered-after-drop set). Other topics'
	// records are read again.
	for _, s := range q.slots[q.slotsHead:] {
		if s.resolved {
			st.acked[s.seq] = s.epoch
		}
	}
	return st
}

// stopPolling ends long polls (the agent is draining).
func (q *queue) stopPolling() { q.stopOnce.Do(func() { close(q.stopPolls) }) }

// counts reports what is in memory: available (or delayed or waiting) and
// leased.
func (q *queue) counts() (ready, inFlight int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.entries) - q.inFlight, q.inFlight
}

// seqState is one message's state for the request record.
//
// A resolved message is found by its slot, or, once advance let the slot
// go, by through, both under mu: the spool cursor is acknowledged after
// the slots are let go, so between the two only through says it. One
// acknowledged before a restart and not read again yet is in the acks the
// queue log gave back (restoredAcked).
func (q *queue) seqState(sid spool.ID) string {
	seq := sid.Seq
	q.mu.Lock()
	e, ok := q.entries[seq]
	if ok && e.epoch != sid.Epoch {
		ok = false
	}
	st := -2
	if ok {
		st = e.state
	}
	held, resolved := false, false
	if s := q.slotLocked(seq); s != nil && s.epoch == sid.Epoch {
		held, resolved = true, s.done
	} else if has(q.afterDrop, sid) {
		held, resolved = true, true
	} else if ep, found := q.restoredAcked[seq]; found && ep == sid.Epoch {
		// Acknowledged before a restart, not read again yet (the reader
		// may be held at its cap below it for as long as consumers take).
		held, resolved = true, true
	} else {
		resolved = q.through.covers(seq, sid.Epoch)
	}
	q.mu.Unlock()
	switch {
	case ok && (st == qLeased || st == qAcking):
		return "in_flight"
	case ok:
		return "pending"
	case held && resolved:
		return "delivered" // acknowledged, even if a drop policy skipped the cursor past it
	case q.cursor.Dropped(seq), !resolved && seq <= q.cursor.Born():
		return "dropped"
	case q.cursor.DropForgotten(seq):
		return "unknown" // dropForgottenStatus: never a false delivered, nor a false dropped
	case resolved || q.cursor.Acked() >= seq:
		return "delivered"
	}
	return "pending"
}

// afterDropMax bounds the memory of messages acknowledged after a drop
// policy skipped them (queue.afterDrop).
const afterDropMax = 65536

// noteAfterDropLocked keeps sl in afterDrop, once, if the queue resolved
// it and a drop policy skipped the cursor past it.
func (q *queue) noteAfterDropLocked(sl *qslot) {
	if sl.noted || !sl.resolved || !q.cursor.Dropped(sl.seq) && !q.cursor.DropForgotten(sl.seq) {
		return
	}
	sl.noted = true
	q.afterDropLog.add([]spool.ID{{Seq: sl.seq, Epoch: sl.epoch}})
}

// noteDroppedResolved runs after a drop (the cursor's DroppedTotal moved
// since the last look): every message the queue already resolved that the
// drop skipped goes into afterDrop now, not when the cursor's
// acknowledgement reaches it (an unresolved message below may hold that
// back past a restart, and the queue log lets go of acknowledgements at or
// below the cursor at the next start; the drop moved the cursor past
// them). Later resolutions of skipped messages note themselves
// (resolveLocked).
func (q *queue) noteDroppedResolved() {
	q.mu.Lock()
	defer q.mu.Unlock()
	d := q.cursor.DroppedTotal()
	if d == q.droppedSeen {
		return
	}
	q.droppedSeen = d
	for _, sl := range q.slots[q.slotsHead:] {
		q.noteAfterDropLocked(sl)
	}
}

// slotLocked finds the slot of seq among those not yet acknowledged on the
// cursor, or nil.
func (q *queue) slotLocked(seq uint64) *qslot {
	live := q.slots[q.slotsHead:]
	i, ok := slices.BinarySearchFunc(live, seq, func(s *qslot, t uint64) int { return cmp.Compare(s.seq, t) })
	if !ok {
		return nil
	}
	return live[i]
}
