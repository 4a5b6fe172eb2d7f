package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
)

// The model's local work queue: sink jobs (type queue) takes topic q alone
// and topic d beside the file sink arch. One model consumer pulls, acks,
// nacks, extends, crashes (drops the receipts it holds) and acks stale
// receipts; the model keeps each message's queue fate (ready, leased to a
// receipt, acknowledged, dead-lettered) and each receipt's lease, and
// checks the queue's promises (README, "What a lease promises"):
//
//   - an acknowledged message is never handed out again, also across kill -9
//     and SIGTERM restarts (acks are durable before the reply);
//   - nothing acknowledged to the queue is lost: at a checkpoint the
//     consumer drains the queue, and every message is then acked by it or
//     dead-lettered with reason max_attempts (after MAX_ATTEMPTS hand-outs
//     the model saw); a replayed dead letter comes back to the queue;
//   - a message is leased to one holder at a time: it is not handed out
//     while a lease on it surely runs, nor before a nack's delay surely ended;
//   - attempts count up by one per hand-out within one agent run, never
//     skip, never pass MAX_ATTEMPTS;
//   - with ORDERED, no two messages of a key are out at once and per key the
//     first hand-outs follow push order;
//   - a receipt whose lease surely runs is acked, nacked, extended; a
//     receipt whose lease is surely over (acked, nacked, superseded by a later
//     hand-out, or from before a restart) is listed in stale, with a reason,
//     and never an error for the others of the call;
//   - GET /v1/messages/{id} shows the queue's view: in_flight while a lease
//     surely runs, pending while none may run (attempts left), delivered
//     once acked and never before, failed (max_attempts) once
//     dead-lettered;
//   - a callback report of a message on the queue is sent once the queue
//     resolved it (model_check_test.go, checkCallbacks).

// The queue's settings in the model's agent.
const (
	modelQueue            = "jobs"
	modelQueueVis         = 2 * time.Second // SLUICE_JOBS_VISIBILITY
	modelQueueMaxAttempts = 3               // SLUICE_JOBS_MAX_ATTEMPTS
	// modelQueueSlack is how late past a lease's or delay's end the agent
	// may notice it (its timers tick every 50 ms; a race build on a busy
	// machine is slower).
	modelQueueSlack = 500 * time.Millisecond
)

// qFate is a message's fate on the queue as far as the model knows it.
type qFate int

const (
	qfReady qFate = iota // waiting, given back, or leased (see its leases)
	qfAcked              // the consumer's ack was answered as taking effect
	qfDead               // listed as a dead letter of the queue
)

// qMsg is one message on the queue.
type qMsg struct {
	r         *msgRec
	fate      qFate
	handouts  int       // since the push or the last replay
	attempt   int       // the attempt of the last hand-out (0: none since the push or replay)
	lastGen   int       // agent run of the last hand-out (or of the replay / first sighting)
	out       bool      // handed out since the push or the last replay
	replayed  bool      // its dead letter was replayed: no longer in push order
	notBefore time.Time // a nack's delay: not handed out before
	deadGen   int       // agent run in which it was seen dead-lettered
}

// qLease is one receipt the consumer got.
type qLease struct {
	m         *qMsg
	receipt   string
	attempt   int
	sent, got time.Time // the pull (or last extend) request: sent, answered
	vis       time.Duration
	gen       int  // agent run that granted it
	over      bool // surely over: acked, nacked, superseded, lost by a restart
}

// liveAt reports whether the lease surely still runs at t: the agent set
// its end no earlier than sent+vis.
func (l *qLease) liveAt(t time.Time, gen int) bool {
	return !l.over && l.gen == gen && t.Before(l.sent.Add(l.vis))
}

// latestEnd is the latest the agent may end the lease.
func (l *qLease) latestEnd() time.Time { return l.got.Add(l.vis) }

// queueModel is the model's queue state.
type queueModel struct {
	msgs    map[string]*qMsg // by id
	held    []*qLease        // receipts the consumer holds
	dropped []*qLease        // receipts it gave up (crash, restart, done), kept for stale acks
	gen     int              // agent runs (bumped at each stop)
	keyLast map[string]int   // ordered: per key, the highest push order handed out first
	blind   bool             // a pull's answer was lost: hand-outs the model did not see
	stats   struct{ handouts, redeliveries, acked, nacked, extended, stale, dead, replayed int }
}

func newQueueModel() *queueModel {
	return &queueModel{msgs: map[string]*qMsg{}, keyLast: map[string]int{}}
}

// qm returns the queue record of r (id known).
func (q *queueModel) qm(r *msgRec) *qMsg {
	x := q.msgs[r.id]
	if x == nil {
		x = &qMsg{r: r, lastGen: q.gen}
		q.msgs[r.id] = x
	}
	return x
}

// drop moves leases to the dropped list: every lease that may still run
// (the horizon needs them) and the latest 200 that are over.
func (q *queueModel) drop(ls ...*qLease) {
	q.dropped = append(q.dropped, ls...)
	over := 0
	for _, l := range q.dropped {
		if l.over {
			over++
		}
	}
	if over <= 400 {
		return
	}
	keep := q.dropped[:0]
	for _, l := range q.dropped {
		if !l.over || over <= 200 {
			keep = append(keep, l)
		} else {
			over--
		}
	}
	clear(q.dropped[len(keep):])
	q.dropped = keep
}

// settleHeld moves leases that are over from held to dropped.
func (q *queueModel) settleHeld() {
	keep := q.held[:0]
	for _, l := range q.held {
		if l.over {
			q.drop(l)
		} else {
			keep = append(keep, l)
		}
	}
	clear(q.held[len(keep):])
	q.held = keep
}

// horizon is the latest moment a lease or delay the model knows of may end.
func (q *queueModel) horizon() time.Time {
	var h time.Time
	for _, ls := range [][]*qLease{q.held, q.dropped} {
		for _, l := range ls {
			if !l.over && l.gen == q.gen && l.latestEnd().After(h) {
				h = l.latestEnd()
			}
		}
	}
	for _, x := range q.msgs {
		if x.fate == qfReady && x.notBefore.After(h) {
			h = x.notBefore
		}
	}
	return h
}

// queueStopped: the agent process ended; every lease with it.
func (m *model) queueStopped() {
	q := m.q
	for _, l := range slices.Concat(q.held, q.dropped) {
		l.over = true
	}
	q.settleHeld()
	q.gen++
}

// qWire is a pulled message.
type qWire struct {
	ID       string          `json:"id"`
	Key      *string         `json:"key"`
	Value    json.RawMessage `json:"value"`
	ValueB64 *string         `json:"value_b64"`
	Receipt  string          `json:"receipt"`
	Attempt  int             `json:"attempt"`
}

// qReply is the answer to a queue call.
type qReply struct {
	code     int
	err      error
	Messages []qWire `json:"messages"`
	Acked    *int    `json:"acked"`
	Nacked   *int    `json:"nacked"`
	Extended *int    `json:"extended"`
	Stale    []struct {
		Receipt string `json:"receipt"`
		Reason  string `json:"reason"`
	} `json:"stale"`
	Code string `json:"code"`
}

func (m *model) qcall(op string, body any) qReply {
	b, _ := json.Marshal(body)
	resp, err := modelClient.Post(m.p.url+"/v1/queues/"+modelQueue+"/"+op, "application/json", bytes.NewReader(b))
	if err != nil {
		return qReply{err: err}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	rep := qReply{code: resp.StatusCode}
	if err := json.Unmarshal(raw, &rep); err != nil {
		rep.err = fmt.Errorf("%v: %s", err, raw)
	}
	return rep
}

// answered checks that a queue call was answered 200; false = not.
func (m *model) answered(op string, rep qReply) bool {
	if rep.err == nil && rep.code == http.StatusOK {
		return true
	}
	m.checkAlive()
	m.fail("queue-api-answers", "%s: %d %s %v", op, rep.code, rep.Code, rep.err)
	return false
}

// queuePull pulls once and applies every hand-out to the model.
func (m *model) queuePull(max int, wait string, vis time.Duration, visSet bool) []*qLease {
	q := m.q
	body := map[string]any{"max": max, "wait": wait}
	if visSet {
		body["visibility"] = vis.String()
	} else {
		vis = modelQueueVis
	}
	sent := time.Now()
	rep := m.qcall("pull", body)
	got := time.Now()
	if !m.answered("pull", rep) {
		q.blind = rep.err != nil // it may have handed out what the model never saw
		return nil
	}
	var out []*qLease
	for _, w := range rep.Messages {
		if l := m.handOut(w, sent, got, vis); l != nil {
			out = append(out, l)
		}
	}
	q.held = append(q.held, out...)
	m.logf("  pull max=%d wait=%s vis=%s → %d messages %v", max, wait, vis, len(rep.Messages), pulledIDs(rep.Messages))
	return out
}

func pulledIDs(ws []qWire) string {
	ids := make([]string, len(ws))
	for i, w := range ws {
		ids[i] = fmt.Sprintf("%s#%d", w.ID, w.Attempt)
	}
	return short(ids)
}

// handOut checks one pulled message against the model and records its
// lease.
func (m *model) handOut(w qWire, sent, got time.Time, vis time.Duration) *qLease {
	q := m.q
	v := []byte(w.Value)
	if w.ValueB64 != nil {
		v, _ = base64.StdEncoding.DecodeString(*w.ValueB64)
	}
	var mv modelValue
	json.Unmarshal(v, &mv)
	m.mu.Lock()
	r := m.msgs[mv.T]
	switch {
	case r == nil:
		m.mu.Unlock()
		m.fail("no-phantoms", "queue handed out %s with token %q the model never pushed", w.ID, mv.T)
		return nil
	case r.out == refused:
		m.fail("no-phantoms", "queue handed out %s (token %s) from a push that was refused (step %d)", w.ID, r.token, r.step)
	case !slices.Contains(r.targets, modelQueue):
		m.fail("routing", "queue handed out %s of topic %s", w.ID, r.topic)
	case r.id == "":
		r.id = w.ID // an unknown outcome: it was spooled
		m.byID[w.ID] = r
	case r.id != w.ID:
		m.fail("one-identity", "queue handed out message %s (step %d, idem=%q chained=%t) under id %s; the agent answered %s", r.token, r.step, r.idem, r.chained, w.ID, r.id)
	}
	m.mu.Unlock()
	x := q.qm(r)
	key := ""
	if w.Key != nil {
		key = *w.Key
	}
	if key != r.key {
		m.fail("queue-message-intact", "queue handed out %s with key %q, pushed with %q", w.ID, key, r.key)
	}
	switch {
	case x.fate == qfAcked:
		m.fail("queue-acked-not-redelivered", "queue handed out %s (attempt %d) again after the consumer's ack took effect (agent runs since the ack: %d)", w.ID, w.Attempt, q.gen-x.lastGen)
	case x.fate == qfDead && x.deadGen == q.gen:
		m.fail("queue-dead-not-redelivered", "queue handed out %s (attempt %d) after it was listed as a dead letter and not replayed", w.ID, w.Attempt)
	case !x.notBefore.IsZero() && got.Before(x.notBefore):
		m.fail("queue-nack-delay", "queue handed out %s %s before the end of its nack's delay", w.ID, x.notBefore.Sub(got).Round(time.Millisecond))
	}
	for _, l := range slices.Concat(q.held, q.dropped) {
		if l.m == x && l.liveAt(got, q.gen) {
			m.fail("queue-one-holder", "queue handed out %s (attempt %d) while its lease of attempt %d surely ran for %s more", w.ID, w.Attempt, l.attempt, l.sent.Add(l.vis).Sub(got).Round(time.Millisecond))
		}
	}
	switch {
	case w.Attempt < 1 || w.Attempt > modelQueueMaxAttempts:
		m.fail("queue-attempts", "queue handed out %s with attempt %d (MAX_ATTEMPTS %d)", w.ID, w.Attempt, modelQueueMaxAttempts)
	case q.blind:
	case w.Attempt > x.attempt+1:
		m.fail("queue-attempts", "queue handed out %s with attempt %d; the model saw attempts up to %d", w.ID, w.Attempt, x.attempt)
	case x.lastGen == q.gen && w.Attempt != x.attempt+1:
		m.fail("queue-attempts", "queue handed out %s with attempt %d after attempt %d in the same agent run", w.ID, w.Attempt, x.attempt)
	}
	if m.cfg.ordered && key != "" {
		m.checkKeyOrder(x, w, got)
	}
	for _, l := range slices.Concat(q.held, q.dropped) {
		if l.m == x {
			l.over = true // superseded: its receipt is stale now
		}
	}
	q.settleHeld()
	x.fate, x.out, x.notBefore = qfReady, true, time.Time{}
	x.handouts++
	x.attempt, x.lastGen = w.Attempt, q.gen
	q.stats.handouts++
	if w.Attempt > 1 {
		q.stats.redeliveries++
	}
	return &qLease{m: x, receipt: w.Receipt, attempt: w.Attempt, sent: sent, got: got, vis: vis, gen: q.gen}
}

// checkKeyOrder (ORDERED): no other message of the key is out, and a
// message's first hand-out does not come before an earlier push's.
func (m *model) checkKeyOrder(x *qMsg, w qWire, got time.Time) {
	q := m.q
	for _, l := range slices.Concat(q.held, q.dropped) {
		if l.m != x && l.m.r.key == x.r.key && l.liveAt(got, q.gen) {
			m.fail("queue-ordered-one-per-key", "queue handed out %s of key %s while %s of that key is surely leased (attempt %d)", w.ID, x.r.key, l.m.r.id, l.attempt)
		}
	}
	for _, y := range q.msgs {
		if y != x && y.r.key == x.r.key && y.fate == qfReady && got.Before(y.notBefore) {
			m.fail("queue-ordered-one-per-key", "queue handed out %s of key %s while %s of that key is nacked with a delay that still runs", w.ID, x.r.key, y.r.id)
		}
	}
	if x.out || x.replayed || x.r.ord == 0 {
		return
	}
	if last := q.keyLast[x.r.key]; last > x.r.ord {
		m.fail("queue-ordered-fifo", "queue handed out %s (key %s, push %d) for the first time after a later push (%d) of its key", w.ID, x.r.key, x.r.ord, last)
	}
	q.keyLast[x.r.key] = max(q.keyLast[x.r.key], x.r.ord)
}

// queueReceipts sends ack, nack or extend for leases (field, when not
// empty, carries d: nack's delay or extend's visibility) and applies the
// reply: a receipt whose lease surely ran must take effect, one surely over
// must come back stale, and the answer counts every receipt once.
func (m *model) queueReceipts(op string, ls []*qLease, field string, d time.Duration) {
	if len(ls) == 0 {
		return
	}
	q := m.q
	body := map[string]any{"receipts": receiptsOf(ls)}
	if field != "" {
		body[field] = d.String()
	}
	sent := time.Now()
	rep := m.qcall(op, body)
	got := time.Now()
	if !m.answered(op, rep) {
		for _, l := range ls {
			l.over = true // unknown
		}
		q.settleHeld()
		return
	}
	stale := map[string]string{}
	for _, s := range rep.Stale {
		stale[s.Receipt] = s.Reason
		if s.Reason != "lease_lost" && s.Reason != "already_done" {
			m.fail("queue-stale-reason", "%s: stale receipt with reason %q", op, s.Reason)
		}
	}
	n := map[string]*int{"ack": rep.Acked, "nack": rep.Nacked, "extend": rep.Extended}[op]
	if n == nil || *n+len(rep.Stale) != len(ls) {
		m.fail("queue-receipts-counted", "%s of %d receipts answered %v done and %d stale", op, len(ls), n, len(rep.Stale))
	}
	var took, wasStale int
	for _, l := range ls {
		why, isStale := stale[l.receipt]
		switch {
		case isStale && l.liveAt(got, q.gen):
			m.fail("queue-live-receipt-works", "%s of %s (attempt %d): stale (%s) although its lease surely ran (for %s more at the reply)", op, l.m.r.id, l.attempt, why, l.sent.Add(l.vis).Sub(got).Round(time.Millisecond))
		case !isStale && l.over && l.gen != q.gen:
			m.fail("queue-stale-receipt", "%s of %s (attempt %d) took effect with a receipt from before a restart", op, l.m.r.id, l.attempt)
		case !isStale && l.over:
			m.fail("queue-stale-receipt", "%s of %s (attempt %d) took effect with a receipt whose lease was over (acked, nacked or superseded)", op, l.m.r.id, l.attempt)
		}
		if isStale {
			wasStale++
			q.stats.stale++
			l.over = true
			continue
		}
		took++
		*map[string]*int{"ack": &q.stats.acked, "nack": &q.stats.nacked, "extend": &q.stats.extended}[op]++
		switch op {
		case "ack":
			l.over = true
			l.m.fate = qfAcked
			m.mu.Lock()
			l.m.r.final[modelQueue] = "delivered"
			m.mu.Unlock()
		case "nack":
			l.over = true
			if d > 0 && l.attempt < modelQueueMaxAttempts {
				l.m.notBefore = sent.Add(d)
			}
		case "extend":
			l.sent, l.got, l.vis = sent, got, d
		}
	}
	q.settleHeld()
	if field != "" {
		op += fmt.Sprintf(" (%s %s)", field, d)
	}
	m.logf("  %s %d receipts → %d done, %d stale %v", op, len(ls), took, wasStale, stale)
}

func receiptsOf(ls []*qLease) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.receipt
	}
	return out
}

// opQueueWork is one consumer round: a pull with a random max, wait and
// visibility, then each held receipt is acked, nacked (now or later),
// extended or kept — a poison message always nacked, so that it reaches
// MAX_ATTEMPTS; then the queue's view of some messages is checked.
func (m *model) opQueueWork() {
	q := m.q
	vis, visSet := modelQueueVis, m.chance(0.6)
	if visSet {
		vis = time.Duration(1+m.rng.IntN(3)) * time.Second
	}
	m.queuePull(1+m.rng.IntN(8), m.pick("0s", "200ms"), vis, visSet)
	var ack, nack, ext, keep []*qLease
	for _, l := range q.held {
		switch n := m.rng.IntN(100); {
		case l.m.r.poison: // the consumer cannot process it: given back until it is dead-lettered
			nack = append(nack, l)
		case n < 45:
			ack = append(ack, l)
		case n < 60:
			nack = append(nack, l)
		case n < 80:
			ext = append(ext, l)
		default:
			keep = append(keep, l)
		}
	}
	switch { // every round with a receipt extends one
	case len(ext) > 0:
	case len(keep) > 0:
		ext = keep[:1]
	case len(ack) > 0:
		ext = ack[:1] // extended, then acked
	}
	m.queueReceipts("extend", ext, "visibility", time.Duration(1+m.rng.IntN(3))*time.Second)
	m.queueReceipts("ack", ack, "", 0)
	switch n := m.rng.IntN(3); n {
	case 0:
		m.queueReceipts("nack", nack, "", 0)
	case 1:
		m.queueReceipts("nack", nack, "delay", 0)
	default:
		m.queueReceipts("nack", nack, "delay", time.Duration(200+m.rng.IntN(1000))*time.Millisecond)
	}
	m.checkQueueStatus()
}

// opQueueCrash: the consumer dies holding its receipts (pulling some
// first when it holds none); their leases run out on their own.
func (m *model) opQueueCrash() {
	q := m.q
	if len(q.held) == 0 {
		m.queuePull(1+m.rng.IntN(4), "200ms", time.Second, true)
	}
	m.logf("  consumer crash: %d receipts dropped", len(q.held))
	q.drop(q.held...)
	clear(q.held)
	q.held = q.held[:0]
}

// opQueueStale acks receipts the consumer gave up (some surely stale:
// from before a restart, acked, nacked or superseded; some whose lease may
// still run) together with one whose lease surely runs: the stale ones are
// listed, the live one is acked. With no surely stale receipt at hand it
// makes one: a lease of 1 s runs out and the message is pulled again.
func (m *model) opQueueStale() {
	q := m.q
	surely := func() int {
		n := 0
		for _, l := range q.dropped {
			if l.over {
				n++
			}
		}
		return n
	}
	if surely() == 0 {
		ls := m.queuePull(2, "200ms", time.Second, true)
		q.drop(ls...)
		q.held = slices.DeleteFunc(q.held, func(l *qLease) bool { return slices.Contains(ls, l) })
		if len(ls) > 0 {
			time.Sleep(time.Until(q.horizon().Add(modelQueueSlack)))
			m.queuePull(10, "500ms", modelQueueVis, false)
		}
	}
	var pick []*qLease
	for _, i := range m.rng.Perm(len(q.dropped)) {
		if len(pick) < 6 {
			pick = append(pick, q.dropped[i])
		}
	}
	if len(q.held) == 0 {
		m.queuePull(1, "200ms", 10*time.Second, true)
	}
	for _, l := range q.held {
		if l.liveAt(time.Now().Add(time.Second), q.gen) {
			pick = append(pick, l)
			break
		}
	}
	if len(pick) == 0 {
		m.logf("  stale ack: no receipts at hand")
		return
	}
	m.rng.Shuffle(len(pick), func(i, j int) { pick[i], pick[j] = pick[j], pick[i] })
	m.logf("  stale ack: %d receipts (%d surely stale)", len(pick), surely())
	m.queueReceipts("ack", pick, "", 0)
}
