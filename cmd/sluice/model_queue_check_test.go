package main

import (
	"net/http"
	"slices"
	"time"
)

// The queue's checks at checkpoints: the consumer drains the queue, dead
// letters of the queue are matched with the model, and the request
// records tell the queue's view.

// queueDrain is the consumer working until the queue is empty: it pulls
// and acks everything but poison messages, which it nacks (so they end as
// dead letters), and waits out the leases and nack delays the model knows
// of (receipts dropped by a crash, delays). False: the queue still handed
// out messages after modelSettle.
func (m *model) queueDrain() bool {
	q := m.q
	begin := time.Now()
	n := 0
	for {
		ls := m.queuePull(100, "300ms", 10*time.Second, true)
		n += len(ls)
		var ack, nack []*qLease
		for _, l := range q.held {
			if l.m.r.poison {
				nack = append(nack, l)
			} else {
				ack = append(ack, l)
			}
		}
		m.queueReceipts("ack", ack, "", 0)
		m.queueReceipts("nack", nack, "", 0)
		if len(ls) == 0 {
			end := q.horizon().Add(modelQueueSlack)
			// Drained means the queue also read the whole spool: after a
			// restart its reader goes through every record from its
			// cursor on (other topics' too) before it hands out the last
			// ones.
			if time.Now().After(end) && m.queueDepth() == 0 {
				m.logf("  queue drained: %d messages in %s", n, time.Since(begin).Round(time.Millisecond))
				return true
			}
			time.Sleep(max(min(time.Until(end), time.Second), 50*time.Millisecond))
		}
		if time.Since(begin) > modelSettle {
			m.fail("queue-drains", "the queue still hands out messages after %s of pulling and acking everything (%d so far)", modelSettle, n)
			return false
		}
	}
}

// queueDepth is the queue's unacknowledged spool records (its cursor's
// backlog, sluice_queue_depth), -1 when the metrics cannot be read.
func (m *model) queueDepth() float64 {
	mt, err := scrape(m.p)
	if err != nil {
		return -1
	}
	return mt[`sluice_queue_depth{queue="jobs"}`]
}

// queueAckedIDs is the ids the consumer acknowledged.
func (m *model) queueAckedIDs() map[string]bool {
	out := map[string]bool{}
	for id, x := range m.q.msgs {
		if x.fate == qfAcked {
			out[id] = true
		}
	}
	return out
}

// queueDeadLetter matches a listed dead letter of the queue with the
// model: reason max_attempts, never a message the consumer acked, only
// after MAX_ATTEMPTS hand-outs; its leases are over.
func (m *model) queueDeadLetter(d deadLetter) {
	m.mu.Lock()
	r := m.byID[d.ID]
	m.mu.Unlock()
	if r == nil {
		return
	}
	q := m.q
	x := q.qm(r)
	if d.Reason != "max_attempts" {
		m.fail("queue-deadletter-reason", "dead letter %d (%s on the queue) has reason %q; the queue has no max age, so only max_attempts", d.DLID, d.ID, d.Reason)
	}
	switch {
	case x.fate == qfAcked:
		m.fail("queue-acked-not-deadlettered", "message %s was acknowledged by the consumer, then dead-lettered on the queue (%s)", d.ID, d.Reason)
		return
	case x.fate == qfDead:
		return
	case !q.blind && x.handouts < modelQueueMaxAttempts:
		m.fail("queue-deadletter-after-max-attempts", "message %s dead-lettered (%s) after %d hand-outs the model saw (MAX_ATTEMPTS %d)", d.ID, d.Reason, x.handouts, modelQueueMaxAttempts)
	}
	x.fate, x.deadGen = qfDead, q.gen
	q.stats.dead++
	for _, l := range slices.Concat(q.held, q.dropped) {
		if l.m == x {
			l.over = true
		}
	}
	q.settleHeld()
}

// queueReplayed: a dead letter of the queue was replayed (known = the
// control call answered): the message is back in the queue, attempts from
// 1, no longer in push order.
func (m *model) queueReplayed(id string, known bool) {
	m.mu.Lock()
	r := m.byID[id]
	m.mu.Unlock()
	if r == nil {
		return
	}
	x := m.q.qm(r)
	if x.fate == qfAcked {
		return
	}
	m.q.stats.replayed++
	x.fate, x.replayed, x.out, x.attempt, x.handouts, x.notBefore = qfReady, true, false, 0, 0, time.Time{}
	x.lastGen = m.q.gen
	if !known {
		x.lastGen = -1 // it may still be the old dead letter
	}
}

// checkQueueStatus compares the queue's part of GET /v1/messages/{id}
// with the model for the messages the consumer holds and a few others:
// in_flight while a lease surely runs, pending while no lease may run and
// it has attempts left, delivered once acked (and never before), failed
// with max_attempts once dead-lettered.
func (m *model) checkQueueStatus() {
	q := m.q
	var ids []string
	want := map[string]*qMsg{}
	add := func(x *qMsg) {
		if x.r.id != "" && want[x.r.id] == nil && len(ids) < 16 {
			ids = append(ids, x.r.id)
			want[x.r.id] = x
		}
	}
	for _, l := range q.held {
		add(l.m)
	}
	n := 0
	for _, x := range q.msgs { // map order: a different few each time
		if n++; n > 8 {
			break
		}
		add(x)
	}
	before := time.Now()
	st := m.statuses(ids)
	at := time.Now()
	for _, id := range ids {
		s, ok := st[id]
		if !ok {
			continue
		}
		x := want[id]
		js := s.Sinks[modelQueue]
		live, mayRun := false, false
		for _, l := range slices.Concat(q.held, q.dropped) {
			live = live || l.m == x && l.liveAt(at, q.gen)
			mayRun = mayRun || l.m == x && !l.over && l.gen == q.gen && before.Before(l.latestEnd().Add(modelQueueSlack))
		}
		switch {
		case s.code != http.StatusOK:
			m.fail("status-answers", "GET /v1/messages/%s answered %d", id, s.code)
		case x.fate == qfAcked && js.Status != "delivered":
			m.fail("queue-status", "message %s was acknowledged by the consumer; its queue status is %q: %s", id, js.Status, s.raw)
		case x.fate == qfDead && (js.Status != "failed" || js.Reason != "max_attempts"):
			m.fail("queue-status", "message %s is a dead letter of the queue (max_attempts); its queue status is %q (%q): %s", id, js.Status, js.Reason, s.raw)
		case x.fate == qfReady && live && js.Status != "in_flight":
			m.fail("queue-status", "message %s is surely leased (attempt %d); its queue status is %q: %s", id, x.attempt, js.Status, s.raw)
		case x.fate == qfReady && !mayRun && x.attempt < modelQueueMaxAttempts && js.Status != "pending":
			m.fail("queue-status", "message %s is not leased (no lease of it may run) and has attempts left (%d of %d); its queue status is %q: %s", id, x.attempt, modelQueueMaxAttempts, js.Status, s.raw)
		case x.fate == qfReady && (js.Status == "delivered" || js.Status == "dropped"):
			m.fail("queue-status", "message %s was not acknowledged by the consumer; its queue status is %q: %s", id, js.Status, s.raw)
		}
	}
}
