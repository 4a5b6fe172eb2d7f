package agent

import (
	"context"
	"time"
)

// catchUp refills lanes that spilled and move again: it reads the spool
// from the lowest record such a lane let go of, once for all of them, and
// queues each lane's records from its spill point up to where the reader
// is; a lane it reaches the reader with stops spilling. It waits, like the
// reader, while the forwarder holds its budget, except when running lanes
// alone fill it (see lane): then one pass at a time.
func (f *forwarder) catchUp(ctx context.Context) {
	type target struct {
		l   *lane
		gen uint64
	}
	for {
		f.mu.Lock()
		var from uint64
		var targets map[string]target
		for !f.stopped {
			from, targets = 0, nil
			// Lanes that spilled give their charge back only once they
			// caught up: a pass may go when the whole budget allows it,
			// or when no records are held at all (lanes alone fill it).
			if f.spilled > 0 && (f.held <= f.budget || f.held == f.lanesHeld) {
				for name, l := range f.lanes {
					if !l.spilled || l.stuck || len(l.queue) >= f.spec.BatchMessages {
						continue
					}
					if targets == nil {
						targets = map[string]target{}
					}
					targets[name] = target{l, l.gen}
					if from == 0 || l.spillFrom < from {
						from = l.spillFrom
					}
				}
			}
			if targets != nil {
				break
			}
			f.cond.Wait()
		}
		if f.stopped {
			f.mu.Unlock()
			return
		}
		from = max(from, f.floor+1)
		// Only what the reader had dispatched before this read is the
		// catch-up's: a record appended and dispatched (skipped, the lane
		// spilled) after ReadFrom looked at the tail must stay spilled.
		readUpTo := f.readUpTo
		f.mu.Unlock()

		recs, err := f.a.sp.ReadFrom(from, f.spec.BatchMessages, f.spec.BatchBytes)
		if err != nil {
			f.log.Error("spool read for a lane that spilled", "err", err)
			if !sleepCtx(ctx, time.Second) {
				return
			}
			continue
		}
		rb := &readBuf{}
		for _, r := range recs {
			rb.bytes += int64(len(r.Data)) + recordOverhead
		}
		now := time.Now()
		f.mu.Lock()
		last := readUpTo // records past the reader are the reader's
		if n := len(recs); n > 0 {
			last = min(last, recs[n-1].ID.Seq)
		}
		var damaged *item
		for _, r := range recs {
			if r.ID.Seq > last {
				break
			}
			if r.ID.Seq <= f.floor {
				continue
			}
			it := f.decode(r)
			if it == nil {
				continue
			}
			if done, seen := f.corruptSeen.get(it.seq); it.corrupt && !seen {
				// Damaged since the reader saw it whole: its lane is
				// not known any more. This pass ends before it, and it
				// is dead-lettered before any lane moves past it (if
				// its lane had delivered it from memory, the dead letter
				// is one too many, never a loss).
				damaged, last = it, it.seq-1
				break
			} else if it.corrupt && done {
				continue // dead-lettered by an earlier pass
			}
			t, ok := targets[it.msg.Topic]
			if !ok || t.l.gen != t.gen || t.l.stuck || it.seq < t.l.spillFrom {
				continue
			}
			it.queued = now
			f.take(it, rb)
			t.l.queue = append(t.l.queue, it)
		}
		for _, t := range targets {
			l := t.l
			if l.gen != t.gen || l.stuck || !l.spilled {
				continue
			}
			l.spillFrom = max(l.spillFrom, last+1)
			if l.spillFrom > f.readUpTo {
				l.spilled = false // caught up: the reader queues for it again
				f.spilled--
			}
		}
		f.cond.Broadcast()
		f.mu.Unlock()
		if damaged != nil {
			if !f.deadLetterUntilWritten(ctx, nil, damaged, "corrupt", "record failed its checksum or could not be decoded") {
				return
			}
			f.mu.Lock()
			f.corruptSeen.put(damaged.seq, true)
			f.mu.Unlock()
		}
		f.advance()
	}
}

// policies applies the sink's backlog cap (drop_oldest) every second and
// notices records the spool dropped for this cursor (its own drop_oldest
// when full), on its own goroutine: a reader waiting for memory or a lane
// stuck on a dead sink never suspends a policy.
func (f *forwarder) policies(ctx context.Context) {
	// Often enough that a sink's drop_oldest cap trims its backlog before
	// a fast producer fills the spool's cap (1 s let ~30 MB through).
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.enforceBacklog()
		f.ackMu.Lock()
		acked := f.cursor.Acked()
		if acked > f.ackedTo {
			f.ackedTo = acked
			f.dropThrough(acked)
		}
		f.ackMu.Unlock()
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

// dropThrough forgets every record up to floor, which a policy dropped:
// queued ones go, ones in a batch being sent are left out of its next
// attempt, spilled lanes will not read them again.
func (f *forwarder) dropThrough(floor uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if floor <= f.floor {
		return
	}
	f.floor = floor
	f.readUpTo = max(f.readUpTo, floor)
	for _, l := range f.lanes {
		for _, it := range l.batch {
			if it.seq <= floor && !it.done {
				it.dropped = true
			}
		}
		i := 0
		for i < len(l.queue) && l.queue[i].seq <= floor {
			f.release(l.queue[i])
			i++
		}
		l.queue = append(l.queue[:0], l.queue[i:]...)
		if l.spilled {
			l.spillFrom = max(l.spillFrom, floor+1)
		}
	}
	f.cond.Broadcast()
}
