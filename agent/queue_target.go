package agent

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
func (q *queue) targetName() string      { return q.spec.Name }
func (q *queue) resolvedThrough() uint64 { return q.cursor.Acked() }

func (q *queue) resolvedAhead(seq uint64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if s := q.slotLocked(seq); s != nil {
		return s.done
	}
	return seq <= q.through.seq // let go by advance, the cursor not acknowledged yet
}

func (q *queue) takeAhead() []uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	seqs := q.aheadNew
	q.aheadNew = nil
	return seqs
}
