package agent

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/spool"
)

// forwarder moves one sink's records from its spool cursor to the sink.
//
// The reader dispatches records to one lane per topic, so a stuck topic
// does not stop the others. A lane sends one batch at a time and retries it
// until it is resolved (delivered, dead-lettered or dropped by a backlog
// policy), which keeps per-key order. A lane whose batch fails lets go of
// what it queued ("spills": its records stay in the spool) and holds only
// the batch it retries; once that batch is through, the catch-up reader
// reads its topic's records again from the spool (spill.go). So what the
// forwarder holds in memory is bounded by a per-sink budget that counts
// real sizes, and only lanes that move can make the reader wait.
//
// The cursor is acknowledged up to the lowest record not yet resolved
// across every lane, so a crash re-delivers and never skips. Backlog
// policies run on their own goroutine: a waiting reader never suspends
// them.
type forwarder struct {
	a      *Agent
	spec   SinkSpec
	cursor *spool.Cursor
	log    *slog.Logger
	m      *sinkMetrics
	budget int64 // bytes the forwarder may hold in memory

	writeMu sync.Mutex // one Write at a time per sink

	ackMu   sync.Mutex // orders cursor acks against drop detection
	ackedTo uint64     // what advance acknowledged; ackMu

	mu       sync.Mutex
	cond     *sync.Cond
	lanes    map[string]*lane
	readUpTo uint64 // every record up to here is resolved or in a lane
	deadFrom uint64 // lowest record the reader is dead-lettering, 0 = none
	floor    uint64 // records up to here were dropped by a backlog policy
	held     int64  // bytes held in memory: read buffers, detached copies
	spilled  int    // lanes spilled
	stopped  bool
	// afterDrop remembers records delivered although a backlog policy had
	// dropped them while their batch was being written, so their status
	// says delivered (bounded).
	afterDrop *boundedMap[uint64, struct{}]

	intern  interner // names seen by dispatch (reader goroutine only)
	scratch Msg

	failing  atomic.Bool
	lastLog  time.Time
	errCount int
}

// defaultForwarderBudget bounds what one forwarder holds in memory; past
// it the reader waits for lanes that are moving.
const defaultForwarderBudget = 16 << 20

func newForwarder(a *Agent, spec SinkSpec, c *spool.Cursor) *forwarder {
	f := &forwarder{
		a: a, spec: spec, cursor: c, lanes: map[string]*lane{}, intern: interner{},
		log: a.log.With("sink", spec.Name), budget: defaultForwarderBudget,
		afterDrop: newBoundedMap[uint64, struct{}](4096),
		ackedTo:   c.Acked(),
	}
	f.readUpTo, f.floor = f.ackedTo, f.ackedTo
	f.cond = sync.NewCond(&f.mu)
	f.m = a.m.forSink(spec.Name)
	return f
}

func (f *forwarder) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer func() {
		f.stop()
		wg.Wait()
	}()
	go func() {
		<-ctx.Done()
		f.stop()
	}()
	wg.Add(2)
	go func() { defer wg.Done(); f.policies(ctx) }()
	go func() { defer wg.Done(); f.catchUp(ctx) }()
	for ctx.Err() == nil {
		f.mu.Lock()
		for f.held > f.budget && !f.stopped {
			f.cond.Wait()
		}
		f.mu.Unlock()
		recs, err := f.cursor.Read(ctx, f.spec.BatchMessages, f.spec.BatchBytes)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, spool.ErrClosed) {
				return
			}
			f.log.Error("spool read", "err", err)
			if !sleepCtx(ctx, time.Second) {
				return
			}
			continue
		}
		f.dispatch(ctx, recs, &wg)
	}
}

func (f *forwarder) stop() {
	f.mu.Lock()
	f.stopped = true
	f.cond.Broadcast()
	f.mu.Unlock()
}

// itemOverhead is what one queued message costs in memory besides its
// bytes (the item, its sink.Message, slice headers), measured with
// TestForwarderMemoryIsBounded.
const itemOverhead = 320

// recordOverhead is what one record of a read buffer costs besides its
// bytes (its spool.Record and cursor mark).
const recordOverhead = 96

// readBuf is one Read's buffer: items decoded from it share its memory, so
// it is held, and counted, until the last of them lets go.
type readBuf struct {
	refs  int
	bytes int64
}

func (f *forwarder) dispatch(ctx context.Context, recs []spool.Record, wg *sync.WaitGroup) {
	now := time.Now()
	rb := &readBuf{}
	for _, r := range recs {
		rb.bytes += int64(len(r.Data)) + recordOverhead
	}
	var dead []*item
	f.mu.Lock()
	for _, r := range recs {
		if r.ID.Seq <= f.floor {
			continue // dropped by a backlog policy after it was read
		}
		f.readUpTo = max(f.readUpTo, r.ID.Seq)
		it, ok := f.decode(r)
		if !ok {
			dead = append(dead, it)
			continue
		}
		if it == nil {
			continue // not for this sink
		}
		l := f.lanes[it.msg.Topic]
		if l == nil {
			l = &lane{topic: it.msg.Topic}
			f.lanes[it.msg.Topic] = l
			wg.Add(1)
			go func() { defer wg.Done(); f.runLane(ctx, l) }()
		}
		if l.spilled {
			continue // the catch-up reader reads it again (expired or not)
		}
		if f.spec.MaxAge > 0 && now.Sub(it.msg.Time) > f.spec.MaxAge {
			dead = append(dead, it)
			continue
		}
		it.queued = now
		f.take(it, rb)
		l.queue = append(l.queue, it)
	}
	if len(dead) > 0 {
		f.deadFrom = dead[0].seq
	}
	f.cond.Broadcast()
	f.mu.Unlock()
	for _, it := range dead {
		reason, msg := "expired", "older than the sink's max age"
		if it.msg.Topic == "" {
			reason, msg = "corrupt", "record failed its checksum or could not be decoded"
		}
		if !f.deadLetterRetrying(ctx, it, reason, msg) {
			return
		}
		f.mu.Lock()
		f.deadFrom = 0
		if next := it.seq + 1; next <= dead[len(dead)-1].seq {
			f.deadFrom = next
		}
		f.mu.Unlock()
	}
	f.advance()
}

// decode turns a record into an item for this sink: nil when the record
// is not routed here, ok false when it is corrupt (the item then carries
// only its id, for the dead letter).
func (f *forwarder) decode(r spool.Record) (it *item, ok bool) {
	sp := f.a.sp
	if r.Corrupt {
		id := formatID(sp.SpoolID(), r.ID)
		return &item{seq: r.ID.Seq, id: id, raw: r.Data, msg: sink.Message{ID: id}}, false
	}
	m := &f.scratch
	if err := decodeMsgInterned(r.Data, m, &f.intern); err != nil {
		id := formatID(sp.SpoolID(), r.ID)
		return &item{seq: r.ID.Seq, id: id, raw: r.Data, msg: sink.Message{ID: id}}, false
	}
	if !m.targets(f.spec.Name) {
		return nil, true
	}
	// One identity: a chained message keeps the id it was pushed with, for
	// records, dead letters, reports and replay alike.
	id := m.ID
	if id == "" {
		id = formatID(sp.SpoolID(), r.ID)
	}
	return &item{seq: r.ID.Seq, id: id, raw: r.Data, msg: m.toSink(id)}, true
}

// take accounts a new item that shares rb's memory. f.mu held.
func (f *forwarder) take(it *item, rb *readBuf) {
	it.buf = rb
	if rb.refs == 0 {
		f.held += rb.bytes
	}
	rb.refs++
}

// release lets go of an item's memory. f.mu held; the caller broadcasts
// f.cond when it is done.
func (f *forwarder) release(it *item) {
	switch {
	case it.buf != nil:
		it.buf.refs--
		if it.buf.refs == 0 {
			f.held -= it.buf.bytes
		}
		it.buf = nil
	case it.own > 0:
		f.held -= it.own
	}
	it.own = 0
}

// detach copies an item out of the read buffer it was decoded from: a
// message that may wait long must not pin a whole buffer of others. f.mu
// held.
func (f *forwarder) detach(it *item) {
	if it.buf == nil {
		return
	}
	it.raw = append([]byte(nil), it.raw...)
	var own Msg
	if decodeMsg(it.raw, &own) == nil {
		it.msg = own.toSink(it.id)
	}
	f.release(it)
	it.own = int64(len(it.raw)) + itemOverhead + int64(len(it.msg.Headers))*48
	f.held += it.own
}

// advance acknowledges the cursor up to the lowest unresolved record.
func (f *forwarder) advance() {
	f.ackMu.Lock()
	defer f.ackMu.Unlock()
	f.mu.Lock()
	point := f.readUpTo
	if f.deadFrom != 0 {
		point = min(point, f.deadFrom-1)
	}
	for _, l := range f.lanes {
		if lo := l.lowest(); lo != 0 {
			point = min(point, lo-1)
		}
	}
	f.mu.Unlock()
	if point <= f.ackedTo {
		return
	}
	if err := f.cursor.Ack(point); err != nil {
		f.log.Error("cursor ack", "err", err)
		return
	}
	f.ackedTo = point
	f.a.records.notify()
}

// heldBytes is what the forwarder holds in memory, as accounted.
func (f *forwarder) heldBytes() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held
}

// deliveredAfterDrop reports whether seq was delivered although a backlog
// policy dropped it.
func (f *forwarder) deliveredAfterDrop(seq uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.afterDrop.get(seq)
	return ok
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
