package agent

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

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
	deliveries *boundedMap[string, delivery] // id + "\x00" + sink
	chained    *boundedMap[string, spool.ID] // kept ids of chained messages
}

func newRecords(size int) *records {
	return &records{
		changed:    make(chan struct{}),
		deliveries: newBoundedMap[string, delivery](size),
		chained:    newBoundedMap[string, spool.ID](size),
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

func (r *records) setChained(id string, sid spool.ID) {
	r.mu.Lock()
	r.chained.put(id, sid)
	r.mu.Unlock()
}

func (r *records) lookupChained(id string) (spool.ID, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.chained.get(id)
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
// index and the bounded caches.
func (a *Agent) status(id string) Status {
	st := Status{ID: id, Status: "unknown"}
	sid, ok := a.records.lookupChained(id)
	if !ok {
		spoolID, parsed, err := parseID(id)
		if err != nil || spoolID != a.sp.SpoolID() {
			return st
		}
		sid = parsed
	}
	if sid.Epoch > a.sp.Epoch() || sid.Seq == 0 || sid.Seq > a.sp.LastSeq() {
		return st
	}
	var targets []string
	if rec, err := a.sp.Get(sid.Seq); err == nil {
		if rec.ID.Epoch != sid.Epoch {
			return st // the sequence was reused after a cut tail: not this message
		}
		var m Msg
		if !rec.Corrupt && decodeMsg(rec.Data, &m) == nil {
			targets = m.Sinks
			st = a.statusOf(sid, id, targets)
			st.Topic = m.Topic
			return st
		}
	}
	return a.statusOf(sid, id, targets)
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
		ss := SinkStatus{Status: "pending"}
		switch d, isDead := dead[f.spec.Name]; {
		case isDead:
			ss = SinkStatus{Status: "failed", Reason: d.reason, Error: d.err}
		case f.cursor.Dropped(sid.Seq) && !f.deliveredAfterDrop(sid.Seq) && !f.deliveredAhead(sid.Seq):
			ss.Status = "dropped"
		case f.cursor.Acked() >= sid.Seq && a.dl.mayHaveForgotten(f.spec.Name, sid.Seq):
			ss = forgottenStatus() // never a false delivered (deadletter_forgotten.go)
		case f.cursor.Acked() >= sid.Seq || f.deliveredAhead(sid.Seq):
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
