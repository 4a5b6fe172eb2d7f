package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// outcome is what the model knows about a pushed message.
type outcome int

const (
	unsent  outcome = iota // not answered yet (or never sent)
	acked                  // 2xx: must leave by delivery, dead letter or counted drop
	maybe                  // timeout, connection error, spool_timeout: may or may not exist
	refused                // a definite error: must never be delivered
)

// msgRec is one message the model pushed.
type msgRec struct {
	token, topic string
	key          string // Sluice-Key or the batch entry's key ("" = none)
	ord          int    // push order: n-th message answered 2xx at its first spooling (0 = unknown: it had an unknown outcome)
	targets      []string
	id           string // the id the agent answered (acked only)
	chained      bool
	poison       bool
	callback     bool // a report is owed
	cbStrict     bool // the callback receiver stayed up and the agent alive since the push
	idem         string
	out          outcome
	step         int
	final        map[string]string // sink → a final state the model observed (delivered, dropped)
}

// request is one push request, kept to retry it byte for byte.
type request struct {
	desc   string
	path   string
	header http.Header
	body   []byte
	msgs   []*msgRec
	idem   string
	ids    []string // of the first 2xx answer
}

type dlKey struct{ id, sink string }

type model struct {
	t       *testing.T
	seed    uint64
	rng     *rand.Rand
	cfg     modelConfig
	dir     string
	archDir string
	p       *proc

	main, opt, cb *receiver
	tightRefused  bool // the agent refused the tightDL configuration

	mu      sync.Mutex // msgs, byID, stats: the kill -9 load writes them too
	msgs    map[string]*msgRec
	byID    map[string]*msgRec
	keyed   []*request
	tiny    map[string]bool // ids of tiny-flood messages not yet seen delivered
	nextTok int

	q       *queueModel
	ordNext int

	dlSeen      map[dlKey]uint64 // dead letters listed and expected to stay listed
	dlEver      map[dlKey]bool   // every dead letter ever listed
	identified  map[uint64]bool  // dead letters with an unknown id, looked at once
	dlCapHit    bool             // sluice_deadletters_discarded_total was seen above 0
	purgedSince int              // dead letters the model purged since the agent started
	droppedBase map[string]float64
	droppedSeen map[string]int

	begin          time.Time
	oplog          []string
	firstLog       []string
	step           int
	violations     []violation
	violationCount int
	seen           map[string]int // invariant → violations
	stop           bool
	stats          struct{ acked, maybe, refused, restarts, checkpoints int }
}

func newModel(t *testing.T, seed uint64) *model {
	m := &model{
		t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), cfg: modelConfigFor(seed),
		dir: t.TempDir(), msgs: map[string]*msgRec{}, byID: map[string]*msgRec{}, tiny: map[string]bool{},
		dlSeen: map[dlKey]uint64{}, dlEver: map[dlKey]bool{}, identified: map[uint64]bool{}, droppedBase: map[string]float64{},
		droppedSeen: map[string]int{}, seen: map[string]int{}, q: newQueueModel(),
	}
	m.archDir = filepath.Join(m.dir, "arch")
	var err error
	if m.main, err = newReceiver("main", false); err != nil {
		t.Fatal(err)
	}
	if m.opt, err = newReceiver("opt", false); err != nil {
		t.Fatal(err)
	}
	if m.cb, err = newReceiver("callbacks", true); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *model) close() {
	if alive(m.p) {
		kill9Proc(m.p)
	}
	m.main.close()
	m.opt.close()
	m.cb.close()
}

func (m *model) token() string {
	m.nextTok++
	return fmt.Sprintf("s%d-%d", m.seed, m.nextTok)
}

func (m *model) pick(xs ...string) string { return xs[m.rng.IntN(len(xs))] }

func (m *model) chance(p float64) bool { return m.rng.Float64() < p }

// newMsg builds one message's model record and value.
func (m *model) newMsg(topic string, poison bool) (*msgRec, []byte) {
	r := &msgRec{token: m.token(), topic: topic, targets: modelTargets[topic], poison: poison, step: m.step, final: map[string]string{}}
	v, _ := json.Marshal(modelValue{T: r.token, Poison: poison})
	return r, v
}

// buildPush makes a random push of kind single, ndjson or batch.
func (m *model) buildPush(kind string) *request {
	req := &request{header: http.Header{}}
	topic := m.pick("a", "a", "b", "b", "c", "d", "q", "q")
	key := m.chance(0.5)
	switch kind {
	case "single", "ndjson":
		n := 1
		if kind == "ndjson" {
			n = 2 + m.rng.IntN(19)
			req.header.Set("Content-Type", "application/x-ndjson")
		}
		var body bytes.Buffer
		for range n {
			r, v := m.newMsg(topic, m.chance(0.08))
			req.msgs = append(req.msgs, r)
			body.Write(v)
			body.WriteByte('\n')
		}
		req.body = body.Bytes()
		if kind == "single" {
			req.body = bytes.TrimSuffix(req.body, []byte("\n"))
		}
		req.path = "/v1/topics/" + topic
		if key {
			k := "k" + fmt.Sprint(m.rng.IntN(8))
			req.header.Set("Sluice-Key", k)
			for _, r := range req.msgs {
				r.key = k
			}
		}
	case "batch":
		req.path = "/v1/messages"
		req.header.Set("Content-Type", "application/json")
		type bm struct {
			Topic string          `json:"topic"`
			Key   *string         `json:"key,omitempty"`
			Value json.RawMessage `json:"value"`
			ID    string          `json:"id,omitempty"`
		}
		var batch struct {
			Messages []bm `json:"messages"`
		}
		for range 1 + m.rng.IntN(10) {
			r, v := m.newMsg(m.pick("a", "b", "c", "d", "q"), m.chance(0.1))
			e := bm{Topic: r.topic, Value: v}
			if key {
				k := "k" + fmt.Sprint(m.rng.IntN(8))
				e.Key, r.key = &k, k
			}
			if m.chance(0.3) {
				e.ID = fmt.Sprintf("relay.%d.%d", m.seed, m.nextTok)
				r.chained, r.id = true, e.ID
			}
			req.msgs = append(req.msgs, r)
			batch.Messages = append(batch.Messages, e)
		}
		req.body, _ = json.Marshal(batch)
	}
	if m.chance(0.2) {
		req.header.Set("Sluice-Callback", m.cb.url+"/report")
		for _, r := range req.msgs {
			r.callback, r.cbStrict = true, m.cb.getMode() == modeUp
		}
	}
	if m.chance(0.3) {
		req.idem = "idem-" + m.token()
		req.header.Set("Idempotency-Key", req.idem)
		for _, r := range req.msgs {
			r.idem = req.idem
		}
	}
	if m.chance(0.15) {
		req.header.Set("Sluice-Ack", "delivered")
		req.header.Set("Sluice-Timeout", "2s")
	}
	req.desc = fmt.Sprintf("%s %s n=%d key=%t cb=%t idem=%q ack=%q", kind, req.path, len(req.msgs), key,
		req.header.Get("Sluice-Callback") != "", req.idem, req.header.Get("Sluice-Ack"))
	return req
}

// pushReply is the agent's answer to a push.
type pushReply struct {
	code    int
	IDs     []string `json:"ids"`
	Status  string   `json:"status"`
	Code    string   `json:"code"`
	Error   string   `json:"error"`
	Replay  bool
	errText string
}

func (m *model) send(p *proc, req *request) pushReply {
	hr, _ := http.NewRequest("POST", p.url+req.path, bytes.NewReader(req.body))
	hr.Header = req.header.Clone()
	resp, err := modelClient.Do(hr)
	if err != nil {
		return pushReply{errText: err.Error()}
	}
	defer resp.Body.Close()
	rep := pushReply{code: resp.StatusCode, Replay: resp.Header.Get("Sluice-Idempotent-Replay") == "true"}
	json.NewDecoder(resp.Body).Decode(&rep)
	return rep
}

// unknownOutcome: the agent may or may not have spooled the request.
func unknownOutcome(r pushReply) bool {
	return r.code == 0 || r.Code == "spool_timeout" || r.code == http.StatusRequestTimeout || r.code >= 500 && r.Code == ""
}

// record applies a reply to the model: outcomes, ids, and the per-reply
// invariants (idempotent replays keep their ids, a healthy topic is not
// refused, an ack that says delivered is delivered).
func (m *model) record(req *request, rep pushReply) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case rep.code >= 200 && rep.code < 300:
		if len(rep.IDs) != len(req.msgs) {
			m.fail("reply-ids", "%s: %d ids for %d messages", req.desc, len(rep.IDs), len(req.msgs))
			return
		}
		if req.ids != nil && !equalIDs(req.ids, rep.IDs) {
			m.fail("idempotent-retry-same-ids", "%s: a retry of Idempotency-Key %q answered ids %v, the first answer was %v (a second copy was spooled)", req.desc, req.idem, short(rep.IDs), short(req.ids))
		}
		if req.ids == nil {
			req.ids = rep.IDs
		}
		for i, r := range req.msgs {
			if r.chained && rep.IDs[i] != r.id {
				m.fail("chained-id-kept", "%s: message with id %q answered as %q", req.desc, r.id, rep.IDs[i])
			}
			if r.out != acked {
				m.stats.acked++
			}
			if r.id != "" && r.id != rep.IDs[i] && r.out == acked {
				continue // an earlier answer already named it; the retry check above reported the change
			}
			if r.out == unsent || r.out == refused { // spooled now, after everything answered before
				m.ordNext++
				r.ord = m.ordNext
			}
			r.out, r.id = acked, rep.IDs[i]
			m.byID[r.id] = r
		}
	case unknownOutcome(rep):
		for _, r := range req.msgs {
			if r.out != acked {
				r.out = maybe
				m.stats.maybe++
			}
		}
	default:
		if rep.Code == "shutting_down" {
			m.fail("control-not-reachable-by-data", "%s answered 503 shutting_down: the agent drains although the model neither signalled it nor called drain", req.desc)
		}
		if rep.code == http.StatusConflict && req.ids != nil {
			m.fail("idempotent-retry-same-ids", "%s: an identical retry answered 409 %s", req.desc, rep.Code)
		}
		for _, r := range req.msgs {
			if r.out != acked && r.out != maybe {
				r.out = refused
				m.stats.refused++
			}
		}
	}
	for _, r := range req.msgs {
		m.msgs[r.token] = r
	}
}

// push sends req, retries it (same bytes, same key) while its outcome is
// unknown and it has an Idempotency-Key, as the README tells clients to,
// and checks the reply.
func (m *model) push(req *request) pushReply {
	rep := m.sendRetry(req, true)
	m.logf("  %s → %d %s ids=%v status=%s replay=%t %s", req.desc, rep.code, rep.Code, short(rep.IDs), rep.Status, rep.Replay, rep.errText)
	if req.idem != "" {
		m.keyed = append(m.keyed, req)
	}
	m.checkRefusal(req, rep)
	if rep.Status == "delivered" {
		m.checkAckDelivered(req)
	}
	if req.header.Get("Sluice-Ack") == "delivered" && rep.code == http.StatusAccepted && !slices.Contains([]string{"delivered", "failed", "dropped", "pending"}, rep.Status) {
		m.fail("ack-delivered-status", "%s answered status %q; Sluice-Ack: delivered answers delivered, failed, dropped or pending (timed out)", req.desc, rep.Status)
	}
	return rep
}

// sendRetry sends req and, while its outcome is unknown and it has an
// Idempotency-Key, sends it again (at most 3 times).
func (m *model) sendRetry(req *request, verbose bool) pushReply {
	rep := m.send(m.p, req)
	m.record(req, rep)
	for try := 0; try < 3 && req.idem != "" && unknownOutcome(rep) && alive(m.p); try++ {
		if verbose {
			m.logf("  %s → %d %s %s: retry with the same Idempotency-Key", req.desc, rep.code, rep.Code, rep.errText)
		}
		rep = m.send(m.p, req)
		m.record(req, rep)
	}
	return rep
}

func (m *model) opPush(kind string) { m.push(m.buildPush(kind)) }

// opRetry resends an earlier keyed request byte for byte.
func (m *model) opRetry() {
	if len(m.keyed) == 0 {
		m.opPush("single")
		return
	}
	// Half the time one of the oldest keys: its record is the likeliest to
	// have been truncated from the spool since.
	req := m.keyed[m.rng.IntN(len(m.keyed))]
	if m.chance(0.5) {
		req = m.keyed[m.rng.IntN(min(len(m.keyed), 3))]
	}
	m.logf("  retry of step %d's request", req.msgs[0].step)
	rep := m.send(m.p, req)
	m.record(req, rep)
	m.logf("  %s → %d %s ids=%v replay=%t %s", req.desc, rep.code, rep.Code, short(rep.IDs), rep.Replay, rep.errText)
}

// opCallbackBurst pushes many messages with a callback at once: a backlog
// of reports for the callback dispatcher.
func (m *model) opCallbackBurst() {
	req := &request{header: http.Header{}, path: "/v1/topics/" + m.pick("a", "d")}
	req.header.Set("Content-Type", "application/x-ndjson")
	req.header.Set("Sluice-Callback", m.cb.url+"/report")
	var body bytes.Buffer
	for range 500 {
		r, v := m.newMsg(strings.TrimPrefix(req.path, "/v1/topics/"), false)
		r.callback, r.cbStrict = true, m.cb.getMode() == modeUp
		req.msgs = append(req.msgs, r)
		body.Write(v)
		body.WriteByte('\n')
	}
	req.body = body.Bytes()
	req.desc = fmt.Sprintf("callback burst %s n=500", req.path)
	m.push(req)
}

func (m *model) opSinkMode() {
	r := m.main
	if m.chance(0.5) {
		r = m.opt
	}
	mode := m.pick(modeUp, modeUp, modeFail, modeHung, modeSlow)
	r.setMode(mode)
	m.logf("  sink %s receiver → %s", r.name, mode)
}

func (m *model) opPoison() {
	r := m.main
	if m.chance(0.5) {
		r = m.opt
	}
	v := m.chance(0.6)
	r.setRefusePoison(v)
	m.logf("  sink %s receiver refuses poison messages: %t", r.name, v)
}

func (m *model) opCallbackMode() {
	mode := m.pick(modeUp, modeFail, modeHung, modeSlow)
	m.cb.setMode(mode)
	if mode != modeUp {
		m.weakenCallbacks()
	}
	m.logf("  callback receiver → %s", mode)
}

// weakenCallbacks: reports owed so far may be given up (counted); the
// model no longer insists that they arrive.
func (m *model) weakenCallbacks() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.msgs {
		r.cbStrict = false
	}
}
