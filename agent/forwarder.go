package agent

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/spool"
)

// forwarder moves one sink's records from its spool cursor to the sink.
// Records are dispatched to one lane per topic, so a stuck topic does not
// stop the others; the cursor is acknowledged up to the lowest record not
// yet resolved (delivered or dead-lettered), so a crash re-delivers and
// never skips. Per-key order holds because a lane sends one batch at a time
// and retries it until it is resolved.
type forwarder struct {
	a      *Agent
	spec   SinkSpec
	cursor *spool.Cursor
	log    *slog.Logger
	m      *sinkMetrics

	writeMu sync.Mutex // one Write at a time per sink

	mu       sync.Mutex
	cond     *sync.Cond
	slots    []*slot // read, unresolved or not yet acknowledged, ascending
	lanes    map[string]*lane
	inflight int64 // payload bytes queued in lanes
	stopped  bool

	intern  interner // names seen by dispatch (reader goroutine only)
	scratch Msg

	failing  atomic.Bool
	lastLog  time.Time
	errCount int
}

type slot struct {
	seq  uint64
	done bool
}

type item struct {
	queued time.Time
	slot   *slot
	id     string
	raw    []byte // the stored record, for dead letters
	msg    sink.Message
	size   int
}

type lane struct {
	topic string
	queue []*item
	stuck bool // its batch is being retried: what it queues is detached
}

// detach copies an item out of the read buffer it was decoded from: a
// message that may wait long must not pin a whole buffer of others that
// were delivered long ago.
func detach(it *item) {
	it.raw = bytes.Clone(it.raw)
	var own Msg
	if decodeMsg(it.raw, &own) == nil {
		it.msg = own.toSink(it.id)
	}
}

// maxInflightPerSink bounds what lanes hold in memory; past it the reader
// waits, so a topic stuck long enough (16 MiB of its messages read) holds
// back the sink's other topics until it moves again.
const maxInflightPerSink = 16 << 20

func newForwarder(a *Agent, spec SinkSpec, c *spool.Cursor) *forwarder {
	f := &forwarder{
		a: a, spec: spec, cursor: c, lanes: map[string]*lane{}, intern: interner{},
		log: a.log.With("sink", spec.Name),
	}
	f.cond = sync.NewCond(&f.mu)
	f.m = a.m.forSink(spec.Name)
	return f
}

func (f *forwarder) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer func() {
		f.mu.Lock()
		f.stopped = true
		f.cond.Broadcast()
		f.mu.Unlock()
		wg.Wait()
	}()
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		f.stopped = true
		f.cond.Broadcast()
		f.mu.Unlock()
	}()
	trim := time.NewTicker(time.Second)
	defer trim.Stop()
	for ctx.Err() == nil {
		select {
		case <-trim.C:
			f.enforceBacklog()
		default:
		}
		f.mu.Lock()
		for f.inflight > maxInflightPerSink && !f.stopped {
			f.cond.Wait()
		}
		f.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		recs, err := f.cursor.Read(rctx, f.spec.BatchMessages, f.spec.BatchBytes)
		cancel()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, spool.ErrClosed) {
				return
			}
			continue // read timeout: check the backlog cap and loop
		}
		f.dispatch(ctx, recs, &wg)
	}
}

// enforceBacklog applies the sink's own backlog cap with drop_oldest.
func (f *forwarder) enforceBacklog() {
	if f.spec.MaxBacklogBytes <= 0 || f.spec.BacklogPolicy != "drop_oldest" {
		return
	}
	if f.cursor.BacklogBytes() <= f.spec.MaxBacklogBytes {
		return
	}
	n, err := f.cursor.TrimBacklog(f.spec.MaxBacklogBytes)
	if err != nil {
		f.log.Error("trimming the sink backlog failed", "err", err)
		return
	}
	if n > 0 {
		f.log.Warn("sink backlog over its cap: oldest messages dropped (policy drop_oldest)", "dropped", n)
	}
}

func (f *forwarder) dispatch(ctx context.Context, recs []spool.Record, wg *sync.WaitGroup) {
	sp := f.a.sp
	now := time.Now()
	var dead []*item
	f.mu.Lock()
	for _, r := range recs {
		s := &slot{seq: r.ID.Seq}
		f.slots = append(f.slots, s)
		it := &item{slot: s, id: formatID(sp.SpoolID(), r.ID), raw: r.Data}
		if r.Corrupt {
			it.msg = sink.Message{ID: it.id}
			dead = append(dead, it)
			continue
		}
		m := &f.scratch
		if err := decodeMsgInterned(r.Data, m, &f.intern); err != nil {
			it.msg = sink.Message{ID: it.id}
			dead = append(dead, it)
			continue
		}
		if !m.targets(f.spec.Name) {
			s.done = true
			continue
		}
		it.msg = m.toSink(it.id)
		it.size = len(m.Value) + len(m.Key)
		if f.spec.MaxAge > 0 && now.Sub(it.msg.Time) > f.spec.MaxAge {
			dead = append(dead, it)
			continue
		}
		l := f.lanes[m.Topic]
		if l == nil {
			l = &lane{topic: m.Topic}
			f.lanes[m.Topic] = l
			wg.Add(1)
			go func() { defer wg.Done(); f.runLane(ctx, l) }()
		}
		it.queued = now
		if l.stuck {
			detach(it)
		}
		l.queue = append(l.queue, it)
		f.inflight += int64(it.size)
	}
	f.cond.Broadcast()
	f.mu.Unlock()
	for _, it := range dead {
		reason, msg := "expired", "older than the sink's max age"
		if it.msg.Topic == "" {
			reason, msg = "corrupt", "record failed its checksum or could not be decoded"
		}
		for !f.deadLetter(ctx, it, reason, msg) {
			if !sleepCtx(ctx, time.Second) {
				return
			}
		}
		f.resolve(it)
	}
	f.advance()
}

// runLane sends one topic's queue, batch by batch.
func (f *forwarder) runLane(ctx context.Context, l *lane) {
	for {
		f.mu.Lock()
		for len(l.queue) == 0 && !f.stopped {
			f.cond.Wait()
		}
		if f.stopped {
			f.mu.Unlock()
			return
		}
		// Linger: a partial batch waits until its oldest message has
		// waited Linger (time spent behind the previous batch counts).
		if wait := f.spec.Linger - time.Since(l.queue[0].queued); len(l.queue) < f.spec.BatchMessages && wait > 0 {
			f.mu.Unlock()
			if !sleepCtx(ctx, wait) {
				return
			}
			f.mu.Lock()
		}
		n, bytes := 0, 0
		for n < len(l.queue) && n < f.spec.BatchMessages && (n == 0 || bytes+l.queue[n].size <= f.spec.BatchBytes) {
			bytes += l.queue[n].size
			n++
		}
		batch := append([]*item(nil), l.queue[:n]...)
		l.queue = append(l.queue[:0], l.queue[n:]...)
		f.mu.Unlock()

		if !f.send(ctx, l, batch) {
			return // stopping: unresolved records stay unacknowledged
		}
		f.mu.Lock()
		f.inflight -= int64(bytes)
		f.cond.Broadcast()
		f.mu.Unlock()
		f.advance()
	}
}

// send resolves every item of batch: delivered, or dead-lettered when the
// sink says the message itself is at fault. Transient errors are retried
// forever with capped exponential backoff and jitter. It returns false
// when ctx ended first.
func (f *forwarder) send(ctx context.Context, l *lane, batch []*item) bool {
	backoff := f.spec.RetryMin
	msgs := make([]sink.Message, len(batch))
	held := false
	defer func() {
		if held {
			f.mu.Lock()
			l.stuck = false
			f.mu.Unlock()
		}
	}()
	for {
		// Messages that outlived the sink's max age while waiting or
		// retrying go to the dead-letter log instead.
		if f.spec.MaxAge > 0 {
			keep := batch[:0:0]
			for _, it := range batch {
				if time.Since(it.msg.Time) > f.spec.MaxAge {
					if !f.deadLetterRetrying(ctx, it, "expired", "older than the sink's max age") {
						return false
					}
					continue
				}
				keep = append(keep, it)
			}
			if len(keep) == 0 {
				return true
			}
			batch, msgs = keep, msgs[:len(keep)]
		}
		for i, it := range batch {
			msgs[i] = it.msg
		}
		f.writeMu.Lock()
		t0 := time.Now()
		err := f.spec.Sink.Write(ctx, msgs)
		f.writeMu.Unlock()
		f.m.writeDuration.UpdateDuration(t0)
		if err == nil {
			f.delivered(batch, msgs)
			f.recovered()
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		var be *sink.BatchError
		switch {
		case errors.As(err, &be) && len(be.Errs) == len(batch):
			var retry []*item
			var retryErr error
			var ok []*item
			var okMsgs []sink.Message
			for i, e := range be.Errs {
				switch {
				case e == nil:
					ok = append(ok, batch[i])
					okMsgs = append(okMsgs, msgs[i])
				case sink.IsPermanent(e):
					if !f.deadLetterRetrying(ctx, batch[i], sink.Reason(e), e.Error()) {
						return false
					}
				default:
					retry = append(retry, batch[i])
					if retryErr == nil {
						retryErr = e
					}
				}
			}
			f.delivered(ok, okMsgs)
			if len(retry) == 0 {
				return true
			}
			batch, msgs = retry, msgs[:len(retry)]
			f.transient(retryErr)
		case sink.IsPermanent(err):
			if len(batch) == 1 {
				return f.deadLetterRetrying(ctx, batch[0], sink.Reason(err), err.Error())
			}
			// Split down until the offending message is alone; the
			// first half goes first to keep per-key order.
			half := len(batch) / 2
			return f.send(ctx, l, batch[:half]) && f.send(ctx, l, batch[half:])
		default:
			f.transient(err)
		}
		if !held {
			held = true
			f.hold(l, batch)
		}
		jitter := time.Duration(rand.Int64N(int64(backoff)/2 + 1))
		if !sleepCtx(ctx, backoff/2+jitter) {
			return false
		}
		backoff = min(backoff*2, f.spec.RetryMax)
	}
}

// hold marks a lane whose batch failed and is retried: its messages may
// now wait long, so the batch and the lane's queue, and what it queues
// until the batch is through, are detached from the read buffers. A lane
// that is only busy sends in order and frees its buffers as it goes.
func (f *forwarder) hold(l *lane, batch []*item) {
	for _, it := range batch {
		detach(it)
	}
	f.mu.Lock()
	l.stuck = true
	for _, it := range l.queue {
		detach(it)
	}
	f.mu.Unlock()
}

func (f *forwarder) delivered(batch []*item, msgs []sink.Message) {
	for i, it := range batch {
		if msgs[i].Delivered {
			f.a.records.setDelivery(it.id, f.spec.Name, msgs[i].DeliveredPart, msgs[i].DeliveredOffset)
		}
		f.resolve(it)
	}
	f.m.delivered.Add(len(batch))
}

func (f *forwarder) resolve(it *item) {
	f.mu.Lock()
	it.slot.done = true
	f.mu.Unlock()
}

// transient counts and logs a retryable failure, at a limited rate.
func (f *forwarder) transient(err error) {
	reason := sink.Reason(err)
	f.m.retry(reason)
	f.failing.Store(true)
	f.mu.Lock()
	f.errCount++
	logNow := time.Since(f.lastLog) > 30*time.Second
	n := f.errCount
	if logNow {
		f.lastLog, f.errCount = time.Now(), 0
	}
	f.mu.Unlock()
	if logNow {
		f.log.Error("sink write failed; retrying (messages are held, not dropped)", "reason", reason, "err", err, "failures_since_last_log", n)
	}
}

func (f *forwarder) recovered() {
	if f.failing.Swap(false) {
		f.log.Info("sink delivering again")
	}
}

// deadLetterRetrying writes a dead letter, retrying while the dead-letter
// log cannot take it (disk full): the message is never acknowledged
// without being delivered or recorded.
func (f *forwarder) deadLetterRetrying(ctx context.Context, it *item, reason, msg string) bool {
	if !f.deadLetterUntilWritten(ctx, it, reason, msg) { // deadletter_stuck.go
		return false
	}
	f.resolve(it)
	return true
}

func (f *forwarder) deadLetter(ctx context.Context, it *item, reason, msg string) bool {
	if err := f.a.dl.add(ctx, f.spec.Name, it.id, reason, msg, it.raw); err != nil {
		f.log.Error("cannot write dead letter; holding the message", "id", it.id, "err", err)
		return false
	}
	f.log.Warn("message dead-lettered", "id", it.id, "topic", it.msg.Topic, "reason", reason, "err", msg)
	if f.spec.DeadLetterTopic != "" && it.msg.Topic != "" {
		f.publishDeadLetter(ctx, it, reason, msg)
	}
	return true
}

// publishDeadLetter also sends a dead letter to the sink's dead-letter
// topic, with the reason in headers. The local dead-letter log is the
// record that counts: this copy is best effort (three tries), counted.
func (f *forwarder) publishDeadLetter(ctx context.Context, it *item, reason, errText string) {
	if len(errText) > 1024 {
		errText = errText[:1024]
	}
	m := it.msg
	m.Topic, m.Partition, m.Delivered = f.spec.DeadLetterTopic, sink.NoPartition, false
	m.Headers = append(append([]sink.Header(nil), it.msg.Headers...),
		sink.Header{Key: "sluice-deadletter-reason", Value: []byte(reason)},
		sink.Header{Key: "sluice-deadletter-error", Value: []byte(errText)},
		sink.Header{Key: "sluice-original-topic", Value: []byte(it.msg.Topic)})
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		f.writeMu.Lock()
		err = f.spec.Sink.Write(ctx, []sink.Message{m})
		f.writeMu.Unlock()
		if err == nil {
			f.m.dlPublished.Inc()
			return
		}
		if sink.IsPermanent(err) || !sleepCtx(ctx, f.spec.RetryMin) {
			break
		}
	}
	f.m.dlPublishFailed.Inc()
	f.log.Warn("dead letter not published to the dead-letter topic (it is in the local dead-letter log)",
		"id", it.id, "topic", f.spec.DeadLetterTopic, "err", err)
}

// advance acknowledges the cursor up to the lowest unresolved record.
func (f *forwarder) advance() {
	f.mu.Lock()
	i := 0
	for i < len(f.slots) && f.slots[i].done {
		i++
	}
	if i == 0 {
		f.mu.Unlock()
		return
	}
	upTo := f.slots[i-1].seq
	f.slots = append(f.slots[:0], f.slots[i:]...)
	f.mu.Unlock()
	if err := f.cursor.Ack(upTo); err != nil {
		f.log.Error("cursor ack", "err", err)
	}
	f.a.records.notify()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
