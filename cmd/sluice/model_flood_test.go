package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Volume operations (floods) and dead-letter operations of the model.

// floodValue is a message value of about size bytes carrying a token.
func floodValue(token string, size int) []byte {
	head := fmt.Sprintf(`{"t":%q,"pad":"`, token)
	return []byte(head + strings.Repeat("p", max(size-len(head)-2, 0)) + `"}`)
}

// opFloodOpt and opFloodCallback push more than the spool cap in 800 KB
// NDJSON requests: opFloodOpt to the optional sink's topic while its
// receiver hangs (its own backlog cap and policy must absorb it),
// opFloodCallback to a healthy topic while a callback report is owed to a
// dead receiver and every sink is up. Then a probe push to topic a (sink
// main, up) must be accepted.
func (m *model) opFloodOpt() { m.floodBig("c") }

func (m *model) opFloodCallback() { m.floodBig("a") }

func (m *model) floodBig(topic string) {
	m.queueDrain() // an unacknowledged queue message holds the spool as a stuck sink would
	m.main.setMode(modeUp)
	m.drainSinks("main")
	if topic == "c" {
		m.opt.setMode(modeHung)
		m.logf("  sink opt receiver → hung; flooding topic c (opt only, policy %s)", m.cfg.optPolicy)
	} else {
		m.opt.setMode(modeUp) // the callback receiver alone is dead
		m.drainSinks("opt")
		m.cb.setMode(m.pick(modeHung, modeFail))
		m.weakenCallbacks()
		req := m.buildPush("single")
		req.path = "/v1/topics/a"
		req.header.Set("Sluice-Callback", m.cb.url+"/report")
		for _, r := range req.msgs {
			r.topic, r.targets, r.callback = "a", modelTargets["a"], true
		}
		m.logf("  callback receiver → %s; one report owed; flooding topic a (sink main up)", m.cb.getMode())
		m.push(req)
	}
	const perReq, size = 100, 8 << 10
	var sent, accepted, refusedRun int
	begin := time.Now()
	limit := modelSpoolMax + 8<<20
	if topic == "c" {
		limit = 2 * modelSpoolMax // past the read-ahead budget, then past the spool cap
	}
	for sent < limit && refusedRun < 3 && time.Since(begin) < 60*time.Second {
		req := &request{header: http.Header{}, path: "/v1/topics/" + topic, desc: "flood " + topic, idem: "flood-" + m.token()}
		req.header.Set("Content-Type", "application/x-ndjson")
		req.header.Set("Idempotency-Key", req.idem) // retried on an unknown outcome, as the README says
		var body bytes.Buffer
		for range perReq {
			r := &msgRec{token: m.token(), topic: topic, targets: modelTargets[topic], step: m.step, final: map[string]string{}}
			req.msgs = append(req.msgs, r)
			body.Write(floodValue(r.token, size))
			body.WriteByte('\n')
		}
		req.body = body.Bytes()
		sent += len(req.body)
		for _, r := range req.msgs {
			r.idem = req.idem
		}
		rep := m.sendRetry(req, false)
		m.checkRefusal(req, rep)
		if rep.code == http.StatusAccepted {
			accepted += len(req.body)
			refusedRun = 0
		} else {
			refusedRun++
			if refusedRun == 1 {
				m.logf("  flood %s refused after %d MiB accepted: %d %s (%s)", topic, accepted>>20, rep.code, rep.Code, rep.Error)
				m.checkDropOldest(topic, rep)
			}
		}
	}
	m.logf("  flood %s: %d MiB sent, %d MiB accepted in %s", topic, sent>>20, accepted>>20, time.Since(begin).Round(time.Millisecond))
	probe := m.buildPush("single")
	probe.path = "/v1/topics/a"
	for _, r := range probe.msgs {
		r.topic, r.targets = "a", modelTargets["a"]
	}
	probe.desc = "probe a after flood"
	m.push(probe)
}

// drainSinks waits (see waitProgress) until the named sinks have no
// backlog, so that a flood starts with a spool free of their messages.
func (m *model) drainSinks(sinks ...string) {
	waitProgress(func() (float64, bool) {
		mt, err := scrape(m.p)
		return sinkBacklog(mt, sinks...), err == nil
	})
}

// checkDropOldest: with BACKLOG_POLICY=drop_oldest, the optional sink's
// topic is refused only when the spool is full of other sinks' messages.
func (m *model) checkDropOldest(topic string, rep pushReply) {
	if topic != "c" || m.cfg.optPolicy != "drop_oldest" || rep.Code != "spool_full" {
		return
	}
	mt, err := scrape(m.p)
	if err != nil {
		return
	}
	mainB, optB := mt[`sluice_spool_backlog_bytes{sink="main"}`], mt[`sluice_spool_backlog_bytes{sink="opt"}`]
	if mainB < modelSpoolMax/2 {
		m.fail("drop-oldest-bounds-backlog", "topic c (sink opt only, MAX_BACKLOG_BYTES %d MiB, BACKLOG_POLICY=drop_oldest, receiver hung) refused 503 spool_full: opt backlog %.1f MiB, main backlog %.1f MiB, spool backlog %.1f MiB, callback receiver %s; drop_oldest must keep opt under its cap and nothing else may fill the spool",
			modelOptBacklog>>20, optB/(1<<20), mainB/(1<<20), mt["sluice_spool_backlog_bytes_total"]/(1<<20), m.cb.getMode())
	}
}

// opFloodTiny pushes 150,000 one-byte messages to topic a while its
// receiver hangs: the forwarder's read-ahead must stay within its memory
// budget (checked against modelHeapBound).
func (m *model) opFloodTiny() {
	prev := m.main.getMode()
	m.main.setMode(modeUp)
	m.opt.setMode(modeUp) // main alone will hold the backlog
	m.drainSinks("main", "opt")
	m.main.setMode(modeHung)
	m.logf("  sink main receiver → hung; 150,000 one-byte messages to topic a")
	body := bytes.Repeat([]byte("x\n"), 1000)
	var accepted atomic.Int64
	var wg sync.WaitGroup
	begin := time.Now()
	for w := range 3 { // three connections: the agent's group commit takes them together
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 150 && time.Since(begin) < 60*time.Second; i += 3 {
				req := &request{header: http.Header{}, path: "/v1/topics/a", body: body}
				req.header.Set("Content-Type", "application/x-ndjson")
				req.header.Set("Idempotency-Key", fmt.Sprintf("tiny-%d-%d-%d", m.seed, m.step, i))
				var rep pushReply
				for try := 0; try < 4; try++ { // retried on an unknown outcome
					if rep = m.send(m.p, req); !unknownOutcome(rep) {
						break
					}
				}
				if rep.code != http.StatusAccepted {
					return // spool full: main holds it, as it should
				}
				m.mu.Lock()
				for _, id := range rep.IDs {
					m.tiny[id] = true
				}
				m.mu.Unlock()
				accepted.Add(int64(len(rep.IDs)))
			}
		}()
	}
	wg.Wait()
	m.stats.acked += int(accepted.Load())
	time.Sleep(2 * time.Second) // let the forwarder read ahead
	m.logf("  tiny flood: %d accepted in %s", accepted.Load(), time.Since(begin).Round(time.Millisecond))
	m.checkHeap()
	m.main.setMode(prev)
}

// deadLetter is one entry of the dead-letter listing.
type deadLetter struct {
	DLID     uint64 `json:"dl_id"`
	ID       string `json:"id"`
	Sink     string `json:"sink"`
	Reason   string `json:"reason"`
	ValueB64 string `json:"value_b64"`
}

// listDeadLetters returns the whole listing, nil on error.
func (m *model) listDeadLetters() []deadLetter {
	code, b, err := control(m.p, "GET", "deadletters?limit=1000000")
	if err != nil {
		// An agent that drains on its own is reported by checkAlive.
		exitedWithin(m.p, modelDrain+modelExitGrace)
		m.checkAlive()
		code, b, err = control(m.p, "GET", "deadletters?limit=1000000")
	}
	if err != nil || code != http.StatusOK {
		m.fail("control-works", "dead-letter listing: %d %v %s", code, err, b)
		return nil
	}
	var v struct {
		Deadletters []deadLetter `json:"deadletters"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		m.fail("control-works", "dead-letter listing: %v", err)
	}
	return v.Deadletters
}

// syncDeadLetters lists the dead letters and checks them against the
// model: every entry names a message the agent acknowledged under that id
// (or one whose outcome was unknown), has a reason, and no entry the model
// saw disappears without the model's own purge or replay.
func (m *model) syncDeadLetters() []deadLetter {
	list := m.listDeadLetters()
	if list == nil {
		return nil
	}
	now := map[dlKey]uint64{}
	for _, d := range list {
		k := dlKey{d.ID, d.Sink}
		now[k] = d.DLID
		if d.Reason == "" {
			m.fail("deadletter-has-reason", "dead letter %d (%s on %s) has no reason", d.DLID, d.ID, d.Sink)
		}
		m.mu.Lock()
		r := m.byID[d.ID]
		m.mu.Unlock()
		if r == nil && !m.identified[d.DLID] {
			m.identified[d.DLID] = true
			m.identify(d)
		}
		if d.Sink == modelQueue {
			m.queueDeadLetter(d)
		}
		m.dlSeen[k] = d.DLID
		m.dlEver[k] = true
	}
	if m.dlDiscarded() > 0 {
		m.dlCapHit = true // from now on the log's cap may discard entries
	}
	for k, dlid := range m.dlSeen {
		if _, ok := now[k]; !ok && m.dlCapHit {
			m.logf("  dead letter %d (%s on %s) left the listing; the dead-letter log's cap discards entries", dlid, k.id, k.sink)
			delete(m.dlSeen, k)
		} else if !ok {
			m.fail("deadletters-stay", "dead letter %d (%s on %s) vanished from the listing; the model neither purged nor replayed it", dlid, k.id, k.sink)
			delete(m.dlSeen, k)
		}
	}
	return list
}

// identify looks at a dead letter whose id the model does not know: a
// message with an unknown outcome learns its id; any other is a dead letter
// filed under an id the agent never answered.
func (m *model) identify(d deadLetter) {
	code, b, err := control(m.p, "GET", "deadletters/"+strconv.FormatUint(d.DLID, 10))
	var full deadLetter
	if err != nil || code != http.StatusOK || json.Unmarshal(b, &full) != nil {
		return
	}
	v, _ := base64.StdEncoding.DecodeString(full.ValueB64)
	var mv modelValue
	json.Unmarshal(v, &mv)
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.msgs[mv.T]
	switch {
	case r == nil:
		// a tiny flood message or a value the model did not write
	case r.out == maybe && r.id == "":
		r.id = d.ID
		m.byID[d.ID] = r
	default:
		m.fail("one-identity", "dead letter %d on %s is filed under id %q; the agent answered %q for that message (chained=%t)", d.DLID, d.Sink, d.ID, r.id, r.chained)
	}
}

// opReplay replays some listed dead letters (by dl_id, so the model knows
// exactly which): each must then be delivered under its own id or
// dead-lettered again.
func (m *model) opReplay() {
	m.takeDeadLetters("replay")
}

// opPurge purges some listed dead letters: their status stays failed.
func (m *model) opPurge() {
	m.takeDeadLetters("purge")
}

func (m *model) takeDeadLetters(action string) {
	list := m.syncDeadLetters()
	var pick []deadLetter
	for _, d := range list {
		if m.chance(0.7) {
			pick = append(pick, d)
		}
	}
	if len(pick) == 0 {
		m.logf("  %s: nothing listed", action)
		return
	}
	ids := make([]string, len(pick))
	for i, d := range pick {
		ids[i] = strconv.FormatUint(d.DLID, 10)
	}
	code, b, err := control(m.p, "POST", "deadletters/"+action+"?dl_id="+url.QueryEscape(strings.Join(ids, ",")))
	m.logf("  %s %d dead letters → %d %s %v", action, len(pick), code, bytes.TrimSpace(b), err)
	if err != nil || code != http.StatusOK {
		if err == nil && code != http.StatusServiceUnavailable {
			m.fail("control-works", "%s: %d %s", action, code, b)
		}
		// Outcome unknown (spool_timeout, connection error): the entries may
		// be gone; the next listing shows those that are not.
		for _, d := range pick {
			delete(m.dlSeen, dlKey{d.ID, d.Sink})
			if d.Sink == modelQueue && action == "replay" {
				m.queueReplayed(d.ID, false)
			}
		}
		return
	}
	var v map[string]int
	json.Unmarshal(b, &v)
	if n := v[map[string]string{"replay": "replayed", "purge": "purged"}[action]]; n != len(pick) {
		m.fail("control-works", "%s of %d listed dead letters answered %s", action, len(pick), b)
	}
	for _, d := range pick {
		k := dlKey{d.ID, d.Sink}
		delete(m.dlSeen, k)
		if action == "replay" {
			delete(m.dlEver, k) // it must be delivered or dead-lettered anew
			if d.Sink == modelQueue {
				m.queueReplayed(d.ID, true)
			}
		} else {
			m.purgedSince++
		}
	}
}
