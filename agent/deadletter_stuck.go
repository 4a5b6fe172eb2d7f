package agent

import (
	"context"
	"sync"
	"time"
)

// A message the sink refused for good must leave its lane as a dead letter.
// When the dead-letter log cannot take it (disk full, I/O error, a record
// larger than the log allows), the message is held and the write retried
// every second — never acknowledged unrecorded — and the lane, with every
// later message of its topic, waits. The lane spills meanwhile, like a lane
// whose sink write fails: what it queued goes back to the spool and what it
// holds is evicted, so a waiting lane holds no message bytes and the reader
// goes on for the other topics. That must not be silent: while any
// lane of a sink waits so, the sink is failing (sluice_sink_failing 1,
// "failing" in /v1/stats and `sluice status`, dead_letter_stuck counts the
// lanes), and an error is logged at the first failure and every 30 s.

// stuckLanes counts, per sink, the lanes waiting on a dead-letter write.
// The zero value is ready.
type stuckLanes struct {
	mu sync.Mutex
	n  map[string]int
}

func (s *stuckLanes) add(sinkName string, d int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[string]int{}
	}
	s.n[sinkName] += d
	if s.n[sinkName] <= 0 {
		delete(s.n, sinkName)
	}
}

func (s *stuckLanes) count(sinkName string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[sinkName]
}

// deadLetterUntilWritten writes its dead letter, retrying every second
// while the dead-letter log refuses it, with the sink shown failing
// meanwhile. It returns false when ctx ends first (the message stays
// unacknowledged). A message the spool no longer has (dropped by a spool
// policy while it waited) needs no dead letter: true.
func (f *forwarder) deadLetterUntilWritten(ctx context.Context, l *lane, it *item, reason, msg string) bool {
	stuck := false
	defer func() {
		if stuck {
			f.a.dlStuck.add(f.spec.Name, -1)
		}
	}()
	var lastLog time.Time
	for attempt := 1; ; attempt++ {
		f.mu.Lock()
		dropped := it.dropped
		f.mu.Unlock()
		if dropped {
			return true // a backlog policy dropped it meanwhile: no dead letter
		}
		gone, err := f.reload(it)
		switch {
		case gone:
			return true
		case err != nil:
			f.log.Error("spool read for a held message", "id", it.id, "err", err)
		case f.deadLetter(ctx, it, reason, msg):
			if stuck {
				f.log.Info("dead letter written after holding its lane", "id", it.id, "attempts", attempt)
			}
			return true
		}
		if !stuck {
			stuck = true
			f.a.dlStuck.add(f.spec.Name, 1)
			if l != nil {
				f.stall(l)
			}
		}
		f.mu.Lock()
		f.evict(it) // read again for the next attempt
		f.mu.Unlock()
		if time.Since(lastLog) >= 30*time.Second {
			lastLog = time.Now()
			f.log.Error("message cannot leave its lane: the sink refused it and the dead-letter log does not take it; "+
				"its topic waits behind it (check the dead-letter disk and SLUICE_DEADLETTER_MAX_BYTES)",
				"id", it.id, "topic", it.msg.Topic, "reason", reason, "attempts", attempt)
		}
		if !sleepCtx(ctx, time.Second) {
			return false
		}
	}
}

// stall spills a lane that waits on something other than its sink: its
// queue goes back to the spool and its batch is evicted.
func (f *forwarder) stall(l *lane) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l.stuck = true
	f.spill(l, 0)
	for _, it := range l.batch {
		if !it.done {
			f.evict(it)
		}
	}
	f.cond.Broadcast()
}

// isFailing: transient write errors, or a lane held by an unwritable dead
// letter.
func (f *forwarder) isFailing() bool {
	return f.failing.Load() || f.a.dlStuck.count(f.spec.Name) > 0
}
