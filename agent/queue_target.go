package agent

import "github.com/sluiceio/sluice/spool"

// A queue as a target the callback dispatcher waits for (cbTarget in
// callback_dispatch.go), beside the forwarders.

// noteAheadLocked tells the callback dispatcher that seq is resolved;
// past aheadMax untaken, its report waits for the cursor instead.
func (q *queue) noteAheadLocked(seq uint64) {
	if len(q.aheadNew) < aheadMax {
		q.aheadNew = append(q.aheadNew, seq)
	}
}

// targetName, resolvedThrough, resolvedAhead and takeAhead make a queue a
// cbTarget: a report of a message the queue takes waits until a consumer
// acknowledged it or it was dead-lettered (or dropped by the backlog
// policy, which moves the cursor).
func (q *queue) targetName() string { return q.spec.Name }

// resolvedThrough is the cursor's position, but below the oldest message
// the queue still holds: a drop policy may skip the cursor past messages
// read into memory, which stay in the queue until acknowledged.
func (q *queue) resolvedThrough() uint64 {
	through := q.cursor.Acked()
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, s := range q.slots[q.slotsHead:] {
		if !s.done {
			return min(through, s.seq-1)
		}
	}
	return through
}

func (q *queue) resolvedAhead(sid spool.ID) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if s := q.slotLocked(sid.Seq); s != nil && s.epoch == sid.Epoch {
		return s.done
	}
	return q.through.covers(sid.Seq, sid.Epoch) // let go by advance, the cursor not acknowledged yet
}

func (q *queue) takeAhead() []uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	seqs := q.aheadNew
	q.aheadNew = nil
	return seqs
}
