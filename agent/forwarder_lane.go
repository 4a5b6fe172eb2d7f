package agent

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/spool"
)

type item struct {
	seq    uint64
	epoch  uint32
	queued time.Time
	id     string
	raw    []byte // the stored record, for dead letters
	msg    sink.Message
	buf    *readBuf // the read buffer raw shares, nil when none
	// corrupt: the record cannot be decoded; it is dead-lettered.
	corrupt bool
	// evicted: raw and msg's bytes were let go (evict); reload reads them
	// again before the item is sent or dead-lettered.
	evicted bool
	done    bool // resolved
	// dropped is set when a backlog policy dropped the item while its
	// batch was being sent: the next attempt leaves it out.
	dropped bool
}

func (it *item) size() int { return len(it.msg.Key) + len(it.msg.Value) }

// lane is one topic's queue. f.mu guards every field.
type lane struct {
	topic string
	queue []*item // read, not yet sent
	batch []*item // being sent, in order
	// stuck is set while the lane retries a batch that failed.
	stuck bool
	// spilled is set when the lane let go of its records from spillFrom
	// on: the reader skips its topic and the catch-up reader reads them
	// again from the spool once the lane moves.
	spilled   bool
	spillFrom uint64
	gen       uint64 // counts spills, so catch-up never extends a newer one
}

// lowest is the lowest record of the lane not yet resolved, 0 = none.
func (l *lane) lowest() uint64 {
	for _, it := range l.batch {
		if !it.done {
			return it.seq
		}
	}
	if len(l.queue) > 0 {
		return l.queue[0].seq
	}
	if l.spilled {
		return l.spillFrom
	}
	return 0
}

// idleLanes is how many lanes with nothing to do a forwarder keeps; past
// it idle lanes end.
const idleLanes = 64

// runLane sends one topic's queue, batch by batch.
func (f *forwarder) runLane(ctx context.Context, l *lane) {
	for {
		f.mu.Lock()
		for len(l.queue) == 0 && !f.stopped {
			if !l.spilled && !l.stuck && len(f.lanes) > idleLanes {
				// Nothing to send or to catch up: let the lane go, so
				// memory does not grow with every topic ever seen. The
				// topic's next record starts a new one.
				delete(f.lanes, l.topic)
				f.mu.Unlock()
				return
			}
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
			if len(l.queue) == 0 { // dropped by a backlog policy meanwhile
				f.mu.Unlock()
				continue
			}
		}
		n, bytes := 0, 0
		for n < len(l.queue) && n < f.spec.BatchMessages && (n == 0 || bytes+l.queue[n].size() <= f.spec.BatchBytes) {
			bytes += l.queue[n].size()
			n++
		}
		batch := append([]*item(nil), l.queue[:n]...)
		l.queue = append(l.queue[:0], l.queue[n:]...)
		l.batch = batch
		f.mu.Unlock()

		if !f.send(ctx, l, batch, true) {
			// Stopping: the batch stays the lane's, unresolved, so no
			// acknowledgement passes it.
			return
		}
		f.mu.Lock()
		l.batch = nil
		if l.stuck {
			l.stuck = false
			f.cond.Broadcast() // the catch-up reader may refill the lane
		}
		f.mu.Unlock()
		f.advance()
	}
}

// send resolves every item of batch: delivered, dead-lettered when the
// sink says the message itself is at fault, or dropped by a backlog
// policy. Transient errors are retried forever with capped exponential
// backoff and jitter. It returns false when ctx ended first. top is false
// for the halves of a split batch.
func (f *forwarder) send(ctx context.Context, l *lane, batch []*item, top bool) bool {
	backoff := f.spec.RetryMin
	msgs := make([]sink.Message, len(batch))
	whole := top // batch is the lane's whole batch, nothing resolved yet
	for {
		if batch = f.prune(ctx, l, batch); batch == nil {
			return ctx.Err() == nil
		}
		// Evicted messages are read again under writeMu, so stuck lanes
		// hold at most one batch in memory at a time between them.
		f.writeMu.Lock()
		var again bool
		var err error
		batch, again, err = f.reloadAll(batch)
		if err != nil || again || len(batch) == 0 {
			f.writeMu.Unlock()
			switch {
			case err != nil:
				f.log.Error("spool read for a held message", "err", err)
			case len(batch) == 0:
				return true
			}
			if again {
				continue // prune dead-letters what became corrupt
			}
			batch = f.hold(l, batch, false)
			if !sleepCtx(ctx, time.Second) {
				return false
			}
			continue
		}
		if len(batch) != len(msgs) {
			whole = false
		}
		msgs = msgs[:len(batch)]
		for i, it := range batch {
			msgs[i] = it.msg
		}
		t0 := time.Now()
		err = f.spec.Sink.Write(ctx, msgs)
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
			var retry, ok, refused []*item
			var refusedErr []error
			var retryErr error
			var okMsgs []sink.Message
			for i, e := range be.Errs {
				switch {
				case e == nil:
					ok = append(ok, batch[i])
					okMsgs = append(okMsgs, msgs[i])
				case sink.IsPermanent(e):
					refused, refusedErr = append(refused, batch[i]), append(refusedErr, e)
				default:
					retry = append(retry, batch[i])
					if retryErr == nil {
						retryErr = e
					}
				}
			}
			f.delivered(ok, okMsgs)
			f.advance()             // what was delivered below the first failure is done
			clear(msgs[:cap(msgs)]) // a dead letter may wait long: pin no bytes meanwhile
			for i, it := range refused {
				if !f.deadLetterRetrying(ctx, l, it, sink.Reason(refusedErr[i]), refusedErr[i].Error()) {
					return false
				}
			}
			if len(retry) == 0 {
				return true
			}
			batch, whole = retry, false
			f.transient(retryErr)
		case sink.IsPermanent(err):
			clear(msgs[:cap(msgs)])
			if len(batch) == 1 {
				return f.deadLetterRetrying(ctx, l, batch[0], sink.Reason(err), err.Error())
			}
			// Split down until the offending message is alone; the
			// first half goes first to keep per-key order.
			half := len(batch) / 2
			return f.send(ctx, l, batch[:half], false) && f.send(ctx, l, batch[half:], false)
		default:
			f.transient(err)
		}
		batch = f.hold(l, batch, whole)
		clear(msgs[:cap(msgs)]) // evicted messages' bytes must not stay reachable from here
		whole = false
		jitter := time.Duration(rand.Int64N(int64(backoff)/2 + 1))
		if !sleepCtx(ctx, backoff/2+jitter) {
			return false
		}
		backoff = min(backoff*2, f.spec.RetryMax)
	}
}

// prune leaves out of batch what a backlog policy dropped and dead-letters
// what is corrupt or outlived the sink's max age. nil when nothing is left
// or ctx ended.
func (f *forwarder) prune(ctx context.Context, l *lane, batch []*item) []*item {
	keep := batch[:0:0]
	f.mu.Lock()
	for _, it := range batch {
		// Delivered ahead of the cursor before a restart (or read again
		// since): not sent again, and never dead-lettered.
		if it.dropped || has(f.ahead, spool.ID{Seq: it.seq, Epoch: it.epoch}) {
			it.done = true
			f.release(it)
			continue
		}
		keep = append(keep, it)
	}
	f.cond.Broadcast()
	f.mu.Unlock()
	fresh := keep[:0]
	for _, it := range keep {
		reason, msg := "", ""
		switch {
		case it.corrupt:
			reason, msg = "corrupt", "record failed its checksum or could not be decoded"
		case f.spec.MaxAge > 0 && time.Since(it.msg.Time) > f.spec.MaxAge:
			reason, msg = "expired", "older than the sink's max age"
		default:
			fresh = append(fresh, it)
			continue
		}
		if !f.deadLetterRetrying(ctx, l, it, reason, msg) {
			return nil
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	return fresh
}

// reloadAll reads evicted items of batch again from the spool. What the
// spool no longer has is resolved (a spool policy dropped it) and left
// out; again is true when a record turned out corrupt (prune dead-letters
// it). On a read error the batch is returned as it was.
func (f *forwarder) reloadAll(batch []*item) (keep []*item, again bool, err error) {
	evicted := false
	for _, it := range batch {
		evicted = evicted || it.evicted
	}
	if !evicted {
		return batch, false, nil
	}
	keep = batch[:0:0]
	for _, it := range batch {
		gone, err := f.reload(it)
		if err != nil {
			return batch, false, err
		}
		if gone {
			f.log.Warn("held message no longer in the spool (dropped by a spool policy)", "id", it.id)
			f.resolve(it)
			continue
		}
		again = again || it.corrupt
		keep = append(keep, it)
	}
	return keep, again, nil
}

// hold marks a lane whose batch failed and is retried. The lane spills:
// what it queued goes back to the spool (read again once the lane moves),
// and when nothing of the batch was resolved yet only its first message is
// retried, the rest spilled too. What the lane keeps is evicted: read
// again from the spool for each attempt. A stuck lane thus holds the
// record numbers of one message (or one partly delivered batch), whatever
// its backlog, and no message bytes between attempts.
func (f *forwarder) hold(l *lane, batch []*item, whole bool) []*item {
	f.mu.Lock()
	defer f.mu.Unlock()
	l.stuck = true
	if whole && len(batch) > 1 {
		for _, it := range batch[1:] {
			f.release(it)
		}
		f.spill(l, batch[1].seq)
		batch = batch[:1]
		l.batch = batch
	} else {
		f.spill(l, 0)
	}
	for _, it := range l.batch { // also the rest of a split batch
		if !it.done {
			f.evict(it)
		}
	}
	for _, it := range batch {
		f.evict(it)
	}
	f.cond.Broadcast()
	return batch
}

// spill lets go of l's queue; from, when not 0, is the lowest record
// spilled besides the queue. f.mu held.
func (f *forwarder) spill(l *lane, from uint64) {
	switch {
	case from != 0:
	case len(l.queue) > 0:
		from = l.queue[0].seq
	case !l.spilled:
		from = f.readUpTo + 1
	default:
		return // already spilled, nothing queued since
	}
	for _, it := range l.queue {
		f.release(it)
	}
	l.queue = nil
	if !l.spilled || from < l.spillFrom {
		l.spillFrom = from
	}
	if !l.spilled {
		f.spilled++
	}
	l.spilled = true
	l.gen++
}

func (f *forwarder) delivered(batch []*item, msgs []sink.Message) {
	for i, it := range batch {
		if msgs[i].Delivered {
			f.a.records.setDelivery(it.id, f.spec.Name, msgs[i].DeliveredPart, msgs[i].DeliveredOffset)
		}
	}
	// A drop the policies' goroutine has made in the spool and not yet
	// applied here (dropThrough runs on its next tick) moved the cursor
	// past items still in flight: nothing else does.
	var acked uint64
	if f.cursor.DroppedTotal() != 0 {
		acked = f.cursor.Acked()
	}
	f.mu.Lock()
	var afterDrop []spool.ID
	for _, it := range batch {
		if it.dropped || it.seq <= acked {
			// A backlog policy dropped it while it was being written:
			// it was delivered all the same, and its status says so.
			afterDrop = append(afterDrop, spool.ID{Seq: it.seq, Epoch: it.epoch})
			f.m.deliveredAfterDrop.Inc()
		}
		it.done = true
		f.release(it)
	}
	f.afterDropLog.add(afterDrop)
	// What another lane holds the cursor below is remembered as
	// delivered, for its status, until the cursor passes it (and across
	// a restart: the forwarder may not send it again before a backlog
	// cap drops it).
	var ahead []spool.ID
	if lo := f.lowestUnresolved(); lo != 0 {
		for _, it := range batch {
			if it.seq > lo {
				ahead = append(ahead, spool.ID{Seq: it.seq, Epoch: it.epoch})
				if len(f.aheadNew) < aheadMax {
					f.aheadNew = append(f.aheadNew, it.seq)
				}
			}
		}
	}
	f.aheadLog.add(ahead)
	f.cond.Broadcast()
	f.mu.Unlock()
	f.m.delivered.Add(len(batch))
	if len(ahead) > 0 {
		f.a.records.notify() // Sluice-Ack: delivered waiters, callbacks
	}
}

func (f *forwarder) resolve(it *item) {
	f.mu.Lock()
	it.done = true
	f.release(it)
	f.cond.Broadcast()
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
func (f *forwarder) deadLetterRetrying(ctx context.Context, l *lane, it *item, reason, msg string) bool {
	if !f.deadLetterUntilWritten(ctx, l, it, reason, msg) { // deadletter_stuck.go
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
