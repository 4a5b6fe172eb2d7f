package agent

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
// reads its topic's records again from the spool (spill.go). The message a
// stuck lane retries is not kept in memory either: the lane keeps its
// record number and reads it again from the spool for each attempt. So what
// the forwarder holds in memory is bounded by a per-sink budget that counts
// real sizes, and only lanes that move can make the reader wait.
//
// Records that are corrupt, or past the sink's max age, are dead-lettered
// by the lanes, not the reader: corrupt records (their topic is unknown)
// have a lane of their own, so a dead-letter log that cannot take a dead
// letter holds one lane, never the reader.
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

	mu        sync.Mutex
	cond      *sync.Cond
	lanes     map[string]*lane
	readUpTo  uint64 // every record up to here is resolved or in a lane
	floor     uint64 // records up to here were dropped by a backlog policy
	held      int64  // bytes held in memory: read buffers, running lanes
	lanesHeld int64  // of held, what running lanes cost (laneCost each)
	spilled   int    // lanes spilled
	stopped   bool
	// afterDrop remembers records delivered although a backlog policy had
	// dropped them while their batch was being written, so their status
	// says delivered (bounded).
	afterDrop    *seqSet
	afterDropLog *seqLog // statuslog.go
	// ahead remembers records delivered while a spilled lane held the
	// cursor below them (the most recent aheadMax), so their status says
	// delivered before the cursor passes them; nothing depends on it for
	// delivery itself.
	ahead    *seqSet
	aheadLog *seqLog
	// aheadNew lists deliveries ahead of the cursor not yet taken by the
	// callback dispatcher (takeAhead), at most aheadMax.
	aheadNew []uint64
	// corruptSeen remembers records the reader found corrupt (they went to
	// corruptLane), so the catch-up reader, which re-reads them, tells them
	// from records that were damaged after the reader saw them whole
	// (bounded: past it, such a record may be dead-lettered twice).
	corruptSeen *boundedMap[uint64, bool]

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
		afterDrop: newBoundedMap[uint64, uint32](4096), corruptSeen: newBoundedMap[uint64, bool](4096),
		ahead:   newBoundedMap[uint64, uint32](aheadMax),
		ackedTo: c.Acked(),
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
		// Each record of a read may start a lane (a new topic): read no
		// more records than the budget has room for lanes, so one read
		// past the budget stays small whatever BATCH_MESSAGES is.
		n := min(f.spec.BatchMessages, int(max((f.budget-f.held)/laneCost, 1)))
		f.mu.Unlock()
		recs, err := f.cursor.Read(ctx, n, f.spec.BatchBytes)
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

// recordOverhead is what one record of a read buffer costs besides its
// bytes: its spool.Record and cursor mark (96), and the item it is decoded
// into with the item's id string and lane queue slot (itemOverhead). With
// one-byte messages the item is most of it: counting the record alone let
// 16 MiB of budget hold 60 MiB of items.
const recordOverhead = 96 + itemOverhead

// itemOverhead is an item's struct (rounded up to its allocation size
// class) plus its id string and queue slot.
const itemOverhead = int64(unsafe.Sizeof(item{})+63)&^63 + 64

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
	f.mu.Lock()
	for _, r := range recs {
		if r.ID.Seq <= f.floor {
			continue // dropped by a backlog policy after it was read
		}
		f.readUpTo = max(f.readUpTo, r.ID.Seq)
		it := f.decode(r)
		if it == nil {
			continue // not for this sink
		}
		if it.corrupt {
			f.corruptSeen.put(it.seq, false)
		}
		l := f.lane(ctx, it.msg.Topic, wg)
		if l.spilled {
			continue // the catch-up reader reads it again
		}
		it.queued = now
		f.take(it, rb)
		l.queue = append(l.queue, it)
	}
	f.cond.Broadcast()
	f.mu.Unlock()
	f.advance()
}

// corruptLane is the lane of records that cannot be decoded: no topic is
// empty, so it is nobody's topic.
const corruptLane = ""

// laneCost is what a live lane costs besides the items it holds: its
// goroutine's stack, the lane, a stuck lane's evicted item and timers
// (measured: 116 MiB for 10,000 stuck topics).
const laneCost = 12 << 10

// lane returns the lane of topic, started on first use. f.mu held. A lane
// is charged to the read-ahead budget while it runs: one lane per topic,
// and a lane that is stuck (a broker down) or hung lives until its sink
// moves, so a backlog spread over many topics would otherwise have the
// reader start lanes without bound. Past the budget the reader waits, as
// it does for held records. The catch-up reader goes on one pass at a
// time when lanes alone fill the budget: the lanes it refills are what
// gives their charge back (a lane ends once it caught up and idles).
func (f *forwarder) lane(ctx context.Context, topic string, wg *sync.WaitGroup) *lane {
	l := f.lanes[topic]
	if l == nil {
		l = &lane{topic: topic}
		f.lanes[topic] = l
		f.held += laneCost
		f.lanesHeld += laneCost
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.runLane(ctx, l)
			f.mu.Lock()
			f.held -= laneCost
			f.lanesHeld -= laneCost
			f.cond.Broadcast()
			f.mu.Unlock()
		}()
	}
	return l
}

// decode turns a record into an item for this sink, nil when the record
// is not routed here. A corrupt record is every sink's: its item carries
// only its id and bytes, for the dead letter, and goes to corruptLane.
func (f *forwarder) decode(r spool.Record) *item {
	sp := f.a.sp
	m := &f.scratch
	if r.Corrupt || decodeMsgInterned(r.Data, m, &f.intern) != nil {
		id := formatID(sp.SpoolID(), r.ID)
		return &item{seq: r.ID.Seq, epoch: r.ID.Epoch, id: id, raw: r.Data, corrupt: true, msg: sink.Message{ID: id, Topic: corruptLane}}
	}
	if !m.targets(f.spec.Name) {
		return nil
	}
	// One identity: a chained message keeps the id it was pushed with, for
	// records, dead letters, reports and replay alike.
	id := m.ID
	if id == "" {
		id = formatID(sp.SpoolID(), r.ID)
	}
	return &item{seq: r.ID.Seq, epoch: r.ID.Epoch, id: id, raw: r.Data, msg: m.toSink(id)}
}

// take accounts a new item that shares rb's memory, and what its decoded
// headers cost beyond it. f.mu held.
func (f *forwarder) take(it *item, rb *readBuf) {
	it.buf = rb
	extra := headersOverhead(it.msg.Headers)
	rb.bytes += extra
	if rb.refs == 0 {
		f.held += rb.bytes
	} else {
		f.held += extra
	}
	rb.refs++
}

// headersOverhead is what decoded headers cost besides the record's bytes
// (their values share those): the slice (grown by append) and a string per
// key. A message may carry any number of headers of a few bytes each.
func headersOverhead(hs []sink.Header) int64 {
	if len(hs) == 0 {
		return 0
	}
	n := int64(cap(hs)) * int64(unsafe.Sizeof(sink.Header{}))
	for _, h := range hs {
		n += int64(len(h.Key)) + 8
	}
	return n
}

// release lets go of an item's read buffer. f.mu held; the caller
// broadcasts f.cond when it is done.
func (f *forwarder) release(it *item) {
	if it.buf == nil {
		return
	}
	it.buf.refs--
	if it.buf.refs == 0 {
		f.held -= it.buf.bytes
	}
	it.buf = nil
}

// evict lets go of an item's bytes, keeping its record number, id, topic
// and time: a message that may wait long (its lane is stuck) is read again
// from the spool when it is needed (reload). f.mu held.
func (f *forwarder) evict(it *item) {
	f.release(it)
	it.raw = nil
	it.msg.Key, it.msg.Value, it.msg.Headers = nil, nil, nil
	it.evicted = true
}

// reload reads an evicted item's record again from the spool. gone is true
// when the spool no longer has it (a spool policy dropped it).
func (f *forwarder) reload(it *item) (gone bool, err error) {
	if !it.evicted {
		return false, nil
	}
	recs, err := f.a.sp.ReadFrom(it.seq, 1, 1)
	if err != nil {
		return false, err
	}
	if len(recs) == 0 || recs[0].ID.Seq != it.seq {
		return true, nil
	}
	r := recs[0]
	var m Msg
	if r.Corrupt || decodeMsg(r.Data, &m) != nil {
		it.corrupt = true // damaged on disk since it was first read
	} else {
		it.msg = m.toSink(it.id)
	}
	it.raw, it.evicted = r.Data, false
	return false, nil
}

// advance acknowledges the cursor up to the lowest unresolved record.
func (f *forwarder) advance() {
	f.ackMu.Lock()
	defer f.ackMu.Unlock()
	f.mu.Lock()
	point := f.readUpTo
	if lo := f.lowestUnresolved(); lo != 0 {
		point = min(point, lo-1)
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

// lowestUnresolved is the lowest record some lane has not resolved, 0 =
// none. f.mu held.
func (f *forwarder) lowestUnresolved() uint64 {
	var lo uint64
	for _, l := range f.lanes {
		if x := l.lowest(); x != 0 && (lo == 0 || x < lo) {
			lo = x
		}
	}
	return lo
}

// heldBytes is what the forwarder holds in memory, as accounted.
func (f *forwarder) heldBytes() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held
}

// aheadMax bounds how many deliveries ahead of the cursor a forwarder
// remembers (about 64 bytes each).
const aheadMax = 1 << 16

// deliveredAhead reports whether sid was delivered although the cursor
// has not passed it yet (a spilled lane holds it below).
func (f *forwarder) deliveredAhead(sid spool.ID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return has(f.ahead, sid)
}

// targetName, resolvedThrough and resolvedAhead make a forwarder a
// cbTarget (with takeAhead).
func (f *forwarder) targetName() string              { return f.spec.Name }
func (f *forwarder) resolvedThrough() uint64         { return f.cursor.Acked() }
func (f *forwarder) resolvedAhead(sid spool.ID) bool { return f.deliveredAhead(sid) }

// takeAhead returns the deliveries ahead of the cursor since the last
// call.
func (f *forwarder) takeAhead() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	seqs := f.aheadNew
	f.aheadNew = nil
	return seqs
}

// deliveredAfterDrop reports whether sid was delivered although a backlog
// policy dropped it.
func (f *forwarder) deliveredAfterDrop(sid spool.ID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return has(f.afterDrop, sid)
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
