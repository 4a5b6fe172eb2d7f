package agent

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// boundedMap is a map that forgets its oldest keys past a fixed size:
// memory stays bounded at any push rate, and grows only as keys come.
type boundedMap[K comparable, V any] struct {
	m    map[K]V
	ring []K
	next int
	max  int
}

func newBoundedMap[K comparable, V any](size int) *boundedMap[K, V] {
	return &boundedMap[K, V]{m: map[K]V{}, max: size}
}

func (b *boundedMap[K, V]) put(k K, v V) {
	if _, ok := b.m[k]; !ok {
		if len(b.ring) < b.max {
			b.ring = append(b.ring, k)
		} else {
			delete(b.m, b.ring[b.next])
			b.ring[b.next] = k
			b.next = (b.next + 1) % len(b.ring)
		}
	}
	b.m[k] = v
}

// each calls fn for every entry, oldest first.
func (b *boundedMap[K, V]) each(fn func(K, V)) {
	for i := range b.ring {
		k := b.ring[(b.next+i)%len(b.ring)]
		if v, ok := b.m[k]; ok {
			fn(k, v)
		}
	}
}

func (b *boundedMap[K, V]) get(k K) (V, bool) {
	v, ok := b.m[k]
	return v, ok
}

type delivery struct {
	partition int32
	offset    int64
}

// records holds the bounded caches behind GET /v1/messages/{id} and the
// broadcast that wakes requests waiting for delivery.
type records struct {
	mu         sync.Mutex
	changed    chan struct{}
	deliveries *boundedMap[string, delivery]   // id + "\x00" + sink
	chained    *boundedMap[string, []spool.ID] // records that carry a kept id (chaining, replay), oldest first
	kept       *keptLog                        // the chained map on disk (records_kept.go); nil: memory only
}

// maxKeptPositions bounds the records remembered per kept id: the first
// (the original push) and the latest replays.
const maxKeptPositions = 8

func newRecords(size int) *records {
	return &records{
		changed:    make(chan struct{}),
		deliveries: newBoundedMap[string, delivery](size),
		chained:    newBoundedMap[string, []spool.ID](size),
	}
}

func (r *records) setDelivery(id, sinkName string, part int32, off int64) {
	r.mu.Lock()
	r.deliveries.put(id+"\x00"+sinkName, delivery{part, off})
	r.mu.Unlock()
}

func (r *records) delivery(id, sinkName string) (delivery, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.deliveries.get(id + "\x00" + sinkName)
}

// setChained records that the record at sid carries the kept id id: a
// chained push, or a dead letter replayed under its id. A message can have
// several such records (a replay per sink it failed on); status reads them
// all.
func (r *records) setChained(id string, sid spool.ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, _ := r.chained.get(id)
	if slices.Contains(old, sid) {
		return
	}
	pos := make([]spool.ID, 0, min(len(old)+1, maxKeptPositions))
	if len(old) >= maxKeptPositions {
		pos = append(pos, old[0]) // the original keeps every target sink
		old = old[len(old)-maxKeptPositions+2:]
	}
	pos = append(append(pos, old...), sid)
	r.chained.put(id, pos)
	if r.kept != nil {
		r.kept.buf = appendKeptLine(r.kept.buf, id, sid)
	}
}

// lookupChained returns the records carrying kept id id, oldest first.
func (r *records) lookupChained(id string) ([]spool.ID, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pos, ok := r.chained.get(id)
	return slices.Clone(pos), ok
}

// loadKept fills the kept-id cache from the records sp still holds: a
// chained message, and a replayed dead letter, read the same after a
// restart as before it. One sequential read of the spool at start;
// records without a kept id are not decoded.
func (r *records) loadKept(sp *spool.Spool) error {
	return sp.Scan(time.Time{}, func(rec spool.Record) bool {
		if rec.Corrupt {
			return true
		}
		if id := keptID(rec.Data); len(id) > 0 {
			r.setChained(string(id), rec.ID)
		}
		return true
	})
}

// wait returns a channel closed at the next acknowledgement of any sink.
func (r *records) wait() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

func (r *records) notify() {
	r.mu.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// formatID renders a spool id as the message's sluice-id:
// <spool id>-<epoch>-<sequence>.
func formatID(spoolID string, id spool.ID) string {
	b := make([]byte, 0, len(spoolID)+24)
	b = append(b, spoolID...)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64(id.Epoch), 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, id.Seq, 10)
	return string(b)
}

func parseID(s string) (spoolID string, id spool.ID, err error) {
	parts := strings.Split(s, "-")
	if len(parts) != 3 {
		return "", id, fmt.Errorf("not a sluice id")
	}
	e, err1 := strconv.ParseUint(parts[1], 10, 32)
	q, err2 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return "", id, fmt.Errorf("not a sluice id")
	}
	return parts[0], spool.ID{Epoch: uint32(e), Seq: q}, nil
}

// SinkStatus is one sink's view of a message.
type SinkStatus struct {
	Status    string `json:"status"`
	Partition *int32 `json:"partition,omitempty"`
	Offset    *int64 `json:"offset,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Status is the request record of GET /v1/messages/{id}.
type Status struct {
	ID     string                `json:"id"`
	Status string                `json:"status"`
	Topic  string                `json:"topic,omitempty"`
	Sinks  map[string]SinkStatus `json:"sinks,omitempty"`
}

// status derives a message's state from the cursors, the dead-letter
// index and the bounded caches. A message can sit in several records: its
// push (at the position its local id names, or a chained one) and one per
// dead-letter replay, which targets only the sink it failed on. Each sink's
// status comes from the latest record that targets it, so a replay never
// hides the message's other sinks.
func (a *Agent) status(id string) Status {
	st := Status{ID: id, Status: "unknown"}
	positions, _ := a.records.lookupChained(id)
	if spoolID, parsed, err := parseID(id); err == nil && spoolID == a.sp.SpoolID() && !slices.Contains(positions, parsed) {
		positions = append([]spool.ID{parsed}, positions...)
	}
	var gone []spool.ID // records no longer readable: targets unknown
	for _, sid := range positions {
		if sid.Epoch > a.sp.Epoch() || sid.Seq == 0 || sid.Seq > a.sp.LastSeq() {
			continue
		}
		rec, err := a.sp.Get(sid.Seq)
		if unreadable(err) {
			// The spool cannot be read for a moment (no file
			// descriptor free, EIO): its targets are not known now, and
			// a sink it never targeted must not be named.
			return Status{ID: id, Status: "unknown"}
		}
		if err != nil {
			gone = append(gone, sid)
			continue
		}
		if rec.ID.Epoch != sid.Epoch {
			continue // the sequence was reused after a cut tail: not this message
		}
		var m Msg
		if rec.Corrupt || decodeMsg(rec.Data, &m) != nil {
			gone = append(gone, sid)
			continue
		}
		one := a.statusOf(sid, id, m.Sinks)
		st.Topic = m.Topic
		if st.Sinks == nil {
			st.Sinks = map[string]SinkStatus{}
		}
		maps.Copy(st.Sinks, one.Sinks) // a later record overrides
	}
	for _, sid := range gone {
		one := a.statusOf(sid, id, nil)
		if st.Sinks == nil {
			st.Sinks = map[string]SinkStatus{}
		}
		for k, v := range one.Sinks {
			if _, ok := st.Sinks[k]; !ok {
				st.Sinks[k] = v
			}
		}
	}
	if st.Sinks != nil {
		st.Status = overall(st.Sinks)
	}
	return st
}

// statusAt is the status of message id pushed at sid for targets, as
// status would say it: the records carrying the id after sid (replays of
// its dead letters) decide for the sinks they target. The push's own
// position and targets are known here (callback reports), so a truncated
// push still lists only its targets.
func (a *Agent) statusAt(sid spool.ID, id string, targets []string) Status {
	if a.sp.Cut(sid) {
		// A machine crash cut the push from the spool's unsynced tail:
		// what its sinks say now is about other records.
		st := Status{ID: id, Status: "unknown", Sinks: map[string]SinkStatus{}}
		for _, t := range targets {
			st.Sinks[t] = cutStatus()
		}
		return st
	}
	st := a.statusOf(sid, id, targets)
	positions, _ := a.records.lookupChained(id)
	changed := false
	for _, p := range positions {
		if p.Seq <= sid.Seq || p.Seq > a.sp.LastSeq() {
			continue
		}
		rec, err := a.sp.Get(p.Seq)
		if unreadable(err) {
			// The spool cannot be read for a moment: whether this later
			// record (a replay) still owes the sink is not known now.
			// Pending puts the report off; it is asked again.
			return Status{ID: id, Status: "pending"}
		}
		var m Msg
		if err != nil || rec.ID.Epoch != p.Epoch || rec.Corrupt || decodeMsg(rec.Data, &m) != nil {
			continue
		}
		for k, v := range a.statusOf(p, id, m.Sinks).Sinks {
			if _, ok := st.Sinks[k]; ok {
				st.Sinks[k], changed = v, true
			}
		}
	}
	if changed {
		st.Status = overall(st.Sinks)
	}
	return st
}

// unreadable reports whether a spool Get failed without saying the record
// is gone or damaged (no file descriptor free, EIO): what it holds is not
// known for now.
func unreadable(err error) bool {
	return err != nil && !errors.Is(err, spool.ErrNoRecord) && !errors.Is(err, spool.ErrCorrupt)
}

// statusOf derives the status of message id (spool position sid) for its
// target sinks (nil = every sink, when the record is gone).
func (a *Agent) statusOf(sid spool.ID, id string, targets []string) Status {
	a.statusCalls.Add(1)
	st := Status{ID: id}
	dead := a.dl.lookup(id)
	st.Sinks = map[string]SinkStatus{}
	for _, f := range a.fwds {
		if targets != nil && !slices.Contains(targets, f.spec.Name) {
			continue
		}
		born := sid.Seq <= f.cursor.Born() // written before the sink's cursor was created
		if born && targets == nil {
			continue // a record gone from the spool, older than the sink
		}
		ss := SinkStatus{Status: "pending"}
		switch d, isDead := dead[f.spec.Name]; {
		case isDead:
			ss = SinkStatus{Status: "failed", Reason: d.reason, Error: d.err}
		case born && !f.deliveredAhead(sid) && !f.deliveredAfterDrop(sid):
			// It names the sink, so a cursor of that name was removed
			// (its backlog given up) before the sink was added again.
			ss.Status = "dropped"
		case f.cursor.Dropped(sid.Seq) && !f.deliveredAfterDrop(sid) && !f.deliveredAhead(sid):
			ss.Status = "dropped"
		case f.cursor.DropForgotten(sid.Seq) && !f.deliveredAfterDrop(sid) && !f.deliveredAhead(sid):
			ss = dropForgottenStatus() // never a false delivered, nor a false dropped
		case f.cursor.Acked() >= sid.Seq && a.sp.Lost(sid) && !f.deliveredAhead(sid):
			ss = lostStatus() // the cursor moved past it unread, or after it was delivered
		case f.cursor.Acked() >= sid.Seq && a.dl.mayHaveForgotten(f.spec.Name, sid.Seq):
			ss = forgottenStatus() // never a false delivered (deadletter_forgotten.go)
		case f.cursor.Acked() >= sid.Seq || f.deliveredAhead(sid):
			ss.Status = "delivered"
			if dv, ok := a.records.delivery(id, f.spec.Name); ok {
				ss.Partition, ss.Offset = &dv.partition, &dv.offset
			}
		}
		st.Sinks[f.spec.Name] = ss
	}
	a.queueStatuses(sid, targets, dead, st.Sinks)
	st.Status = overall(st.Sinks)
	return st
}

func overall(sinks map[string]SinkStatus) string {
	has := map[string]bool{}
	for _, s := range sinks {
		has[s.Status] = true
	}
	for _, s := range []string{"pending", "in_flight", "failed", "unknown", "dropped", "delivered"} {
		if has[s] {
			return s
		}
	}
	return "unknown"
}
