package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sluiceio/sluice/sink/file"
)

// The model's invariants. Per step: the heap bound, a push refused
// although its sinks are healthy, an ack that says delivered. At a
// checkpoint, after every receiver is up and the backlog settled: every
// acknowledged message left each target sink (delivered, dead-lettered
// with a reason, or dropped by a counted policy) under the id it was
// acknowledged with; its status says which; no message is delivered twice
// under two ids; nothing refused is delivered; callback reports tell the
// truth and arrive.

// checkHeap: while sinks have a backlog, the agent's live Go heap stays
// under modelHeapBase plus the read-ahead budget of each of them. The live
// heap is estimated as go_memstats_next_gc_bytes / 2 (the GC's goal is
// twice the heap that survived the last cycle at GOGC=100), so garbage not
// yet collected does not count. With no backlog the check is skipped: the
// estimate is as old as the last GC, which may have run under a backlog
// that has drained since.
func (m *model) checkHeap() {
	if !alive(m.p) {
		return
	}
	mt, err := scrape(m.p)
	if err != nil {
		return
	}
	bound, backlogged := float64(modelHeapBase), []string{}
	for _, s := range []string{"main", "opt", "arch"} {
		if mt[fmt.Sprintf(`sluice_spool_backlog_messages{sink=%q}`, s)] > 0 {
			bound += modelReadAhead
			backlogged = append(backlogged, s)
		}
	}
	if live := mt["go_memstats_next_gc_bytes"] / 2; len(backlogged) > 0 && live > bound {
		m.fail("heap-bounded", "live heap ≈ %.0f MiB (next_gc/2; heap_inuse %.0f MiB) > bound %.0f MiB (%d MiB + %d MiB read-ahead for each of the backlogged sinks %v; backlog main %.0f msgs, opt %.0f msgs)",
			live/(1<<20), mt["go_memstats_heap_inuse_bytes"]/(1<<20), bound/(1<<20), modelHeapBase>>20, modelReadAhead>>20, backlogged,
			mt[`sluice_spool_backlog_messages{sink="main"}`], mt[`sluice_spool_backlog_messages{sink="opt"}`])
	}
}

// sinkHealthy reports whether the model's receiver for sink s delivers.
func (m *model) sinkHealthy(s string) bool {
	switch s {
	case "main":
		return modeHealthy(m.main.getMode())
	case "opt":
		return modeHealthy(m.opt.getMode())
	}
	return true // arch: the file sink
}

// checkRefusal: a push refused with spool_full although every sink it
// targets is healthy and far from its own limit was refused because of
// something else (another sink, the callback receiver).
func (m *model) checkRefusal(req *request, rep pushReply) {
	if rep.code != http.StatusServiceUnavailable || rep.Code != "spool_full" {
		return
	}
	var targets []string
	for _, r := range req.msgs {
		for _, s := range r.targets {
			if !slices.Contains(targets, s) {
				targets = append(targets, s)
			}
		}
	}
	mt, err := scrape(m.p)
	if err != nil {
		return
	}
	var detail []string
	for _, s := range targets {
		limit := float64(modelSpoolMax)
		if s == "opt" {
			limit = modelOptBacklog
		}
		b := mt[fmt.Sprintf(`sluice_spool_backlog_bytes{sink=%q}`, s)]
		if !m.sinkHealthy(s) || b >= limit/2 {
			return
		}
		detail = append(detail, fmt.Sprintf("%s backlog %.1f MiB", s, b/(1<<20)))
	}
	// A spool full of a healthy sink's backlog (a flood it has not drained
	// yet) refuses every topic: back-pressure, not a stuck sink taking
	// the others' room.
	if total := mt["sluice_spool_backlog_bytes_total"]; total >= 0.9*float64(modelSpoolMax) {
		largest, most := "", 0.0
		for _, s := range []string{"main", "opt", "arch"} {
			if b := mt[fmt.Sprintf(`sluice_spool_backlog_bytes{sink=%q}`, s)]; b > most {
				largest, most = s, b
			}
		}
		if largest != "" && m.sinkHealthy(largest) && most >= total/2 {
			return
		}
	}
	m.fail("healthy-topic-accepted", "%s refused 503 spool_full although its sinks are healthy (%s); spool backlog total %.1f MiB of %d MiB; opt receiver %s (policy %s), callback receiver %s",
		req.desc, strings.Join(detail, ", "), mt["sluice_spool_backlog_bytes_total"]/(1<<20), modelSpoolMax>>20, m.opt.getMode(), m.cfg.optPolicy, m.cb.getMode())
}

// checkAckDelivered: a Sluice-Ack: delivered reply that says "delivered"
// means every target receiver has every message already.
func (m *model) checkAckDelivered(req *request) {
	got := m.receivedIDs()
	for _, r := range req.msgs {
		for _, s := range r.targets {
			if !got[s][r.id] {
				m.fail("ack-delivered-is-delivered", "%s answered status delivered, but sink %s never received %s (chained=%t poison=%t)", req.desc, s, r.id, r.chained, r.poison)
				return
			}
		}
	}
}

// receivedIDs is sink → ids it received.
func (m *model) receivedIDs() map[string]map[string]bool {
	out := map[string]map[string]bool{"main": {}, "opt": {}, "arch": {}, modelQueue: m.queueAckedIDs()}
	for _, d := range m.main.deliveries() {
		out["main"][d.id] = true
	}
	for _, d := range m.opt.deliveries() {
		out["opt"][d.id] = true
	}
	for _, d := range m.archDeliveries() {
		out["arch"][d.id] = true
	}
	return out
}

func (m *model) archDeliveries() []delivery {
	recs, _ := file.ReadDir(m.archDir)
	out := make([]delivery, 0, len(recs))
	for _, r := range recs {
		var mv modelValue
		json.Unmarshal(r.Message().Value, &mv)
		out = append(out, delivery{id: r.ID, token: mv.T})
	}
	return out
}

// waitProgress polls remaining (a count that should fall to 0) until it is
// 0, or it did not fall for modelStall, or modelSettle passed; it returns
// the last count (-1: never measured).
func waitProgress(remaining func() (float64, bool)) float64 {
	last, lastMove := -1.0, time.Now()
	for deadline := time.Now().Add(modelSettle); ; {
		if n, ok := remaining(); ok {
			if n == 0 {
				return 0
			}
			if last < 0 || n < last {
				lastMove = time.Now()
			}
			last = n
		}
		if time.Since(lastMove) > modelStall || time.Now().After(deadline) {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sinkBacklog sums the backlog messages of sinks.
func sinkBacklog(mt map[string]float64, sinks ...string) float64 {
	n := 0.0
	for _, s := range sinks {
		n += mt[fmt.Sprintf(`sluice_spool_backlog_messages{sink=%q}`, s)]
	}
	return n
}

// settle waits until no sink has a backlog (see waitProgress); it reports
// the sinks that still have one.
func (m *model) settle() (stuck map[string]float64, mt map[string]float64) {
	waitProgress(func() (float64, bool) {
		m.checkAlive()
		var err error
		if mt, err = scrape(m.p); err != nil {
			return 0, false
		}
		return sinkBacklog(mt, "main", "opt", "arch"), true
	})
	stuck = map[string]float64{}
	for _, s := range []string{"main", "opt", "arch"} {
		if n := sinkBacklog(mt, s); n > 0 {
			stuck[s] = n
		}
	}
	return stuck, mt
}

// agentStatus is GET /v1/messages/{id}.
type agentStatus struct {
	code   int
	raw    string
	Status string `json:"status"`
	Sinks  map[string]struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
	} `json:"sinks"`
}

func (m *model) statuses(ids []string) map[string]agentStatus {
	out := make(map[string]agentStatus, len(ids))
	var mu sync.Mutex
	work := make(chan string)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				resp, err := modelClient.Get(m.p.url + "/v1/messages/" + id)
				if err != nil {
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				st := agentStatus{code: resp.StatusCode, raw: string(b)}
				json.Unmarshal(b, &st)
				resp.Body.Close()
				mu.Lock()
				out[id] = st
				mu.Unlock()
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	return out
}

// checkpoint brings every receiver up, lets the agent settle (bounded) and
// checks the whole model.
func (m *model) checkpoint() {
	m.stats.checkpoints++
	m.ensureAgent()
	m.main.setMode(modeUp)
	m.opt.setMode(modeUp)
	m.cb.setMode(modeUp)
	begin := time.Now()
	stuck, mt := m.settle()
	m.logf("  checkpoint: settled in %s, stuck %v, heap in use %.0f MiB, live ≈ %.0f MiB", time.Since(begin).Round(time.Millisecond), stuck,
		mt["go_memstats_heap_inuse_bytes"]/(1<<20), mt["go_memstats_next_gc_bytes"]/2/(1<<20))
	for s, n := range stuck {
		failing := mt[fmt.Sprintf(`sluice_sink_failing{sink=%q}`, s)]
		if failing == 0 {
			m.fail("stuck-sink-is-visible", "sink %s: %.0f messages still in its backlog, none delivered for %s with every receiver up, and sluice_sink_failing=0", s, n, modelStall)
		} else {
			m.fail("backlog-drains", "sink %s: %.0f messages still in its backlog, none delivered for %s with every receiver up (sluice_sink_failing=1)", s, n, modelStall)
		}
	}
	m.checkAlive()
	drained := m.queueDrain()
	m.syncDeadLetters()
	got := m.checkDeliveries()
	got[modelQueue] = m.queueAckedIDs()
	m.checkFates(got, len(stuck) == 0 && drained)
	m.checkQueueStatus()
	if len(stuck) == 0 {
		m.checkTiny(got["main"])
	}
	m.checkCallbacks(got)
	m.checkHeap()
	m.checkAlive()
	if n := mt["sluice_deadletters_purged_total"]; int(n) > m.purgedSince {
		m.fail("control-not-reachable-by-data", "sluice_deadletters_purged_total = %.0f, the model purged %d since the agent started", n, m.purgedSince)
	}
}

// checkDeliveries checks every delivery against the model and returns
// sink → ids received.
func (m *model) checkDeliveries() map[string]map[string]bool {
	got := map[string]map[string]bool{"main": {}, "opt": {}, "arch": {}}
	idsOf := map[[2]string]map[string]bool{} // (token, sink) → ids
	m.mu.Lock()
	defer m.mu.Unlock()
	for s, ds := range map[string][]delivery{"main": m.main.deliveries(), "opt": m.opt.deliveries(), "arch": m.archDeliveries()} {
		for _, d := range ds {
			got[s][d.id] = true
			if d.token == "" {
				continue // a tiny-flood message: checked by id
			}
			r := m.msgs[d.token]
			if r == nil {
				m.fail("no-phantoms", "sink %s received %s with token %s the model never pushed", s, d.id, d.token)
				continue
			}
			switch {
			case r.out == refused:
				m.fail("no-phantoms", "sink %s received %s (token %s) from a push that was refused (step %d)", s, d.id, d.token, r.step)
			case !slices.Contains(r.targets, s):
				m.fail("routing", "sink %s received %s of topic %s", s, d.id, r.topic)
			case r.out == maybe && r.id == "":
				r.id = d.id
				m.byID[d.id] = r
			case r.id != d.id:
				m.fail("one-identity", "sink %s received message %s (token %s, step %d, idem=%q chained=%t) under id %s; the agent answered %s",
					s, d.id, d.token, r.step, r.idem, r.chained, d.id, r.id)
			}
			k := [2]string{d.token, s}
			if idsOf[k] == nil {
				idsOf[k] = map[string]bool{}
			}
			idsOf[k][d.id] = true
		}
	}
	for k, ids := range idsOf {
		if len(ids) > 1 {
			r := m.msgs[k[0]]
			m.fail("one-copy", "message %s (step %d, idem=%q) reached sink %s under %d ids %v: consumers cannot de-duplicate", k[0], r.step, r.idem, k[1], len(ids), keys(ids))
		}
	}
	return got
}

// checkFates: every acknowledged message left each target sink, and its
// status says how.
func (m *model) checkFates(got map[string]map[string]bool, settled bool) {
	m.mu.Lock()
	var open, sample []*msgRec
	for _, r := range m.msgs {
		if r.out != acked {
			continue
		}
		done := true
		for _, s := range r.targets {
			if r.final[s] != "" {
				continue
			}
			if got[s][r.id] {
				r.final[s] = "delivered"
				continue
			}
			done = false
		}
		switch {
		case !done:
			open = append(open, r)
		case len(sample) < 30 && m.rng.IntN(20) == 0:
			sample = append(sample, r)
		}
	}
	m.mu.Unlock()
	all := append(open, sample...)
	sort.Slice(all, func(i, j int) bool { return all[i].token < all[j].token })
	ids := make([]string, len(all))
	for i, r := range all {
		ids[i] = r.id
	}
	st := m.statuses(ids)
	lost := 0
	for _, r := range all {
		s, ok := st[r.id]
		if !ok {
			continue // the GET failed: next checkpoint
		}
		if s.code != http.StatusOK {
			m.fail("status-answers", "GET /v1/messages/%s answered %d", r.id, s.code)
			continue
		}
		if s.Status == "unknown" {
			m.fail("status-known", "acknowledged message %s (step %d, topic %s, chained=%t) has status unknown", r.id, r.step, r.topic, r.chained)
			continue
		}
		for _, sink := range r.targets {
			ss := s.Sinks[sink].Status
			received, dead := got[sink][r.id], m.dlEver[dlKey{r.id, sink}]
			switch {
			case received && ss == "dropped":
				m.fail("dropped-is-not-delivered", "message %s was delivered to %s but its status says dropped", r.id, sink)
			case received && ss == "failed" && !dead:
				m.fail("status-tells-fate", "message %s was delivered to %s but its status says failed", r.id, sink)
			case received && ss == "pending" && settled:
				m.fail("status-tells-fate", "message %s was delivered to %s but its status says pending", r.id, sink)
			case received:
			case dead && ss == "":
				m.fail("status-lists-targets", "message %s (chained=%t) is a dead letter on %s but its status has no entry for that sink: %s", r.id, r.chained, sink, s.raw)
			case dead && ss != "failed":
				m.fail("status-tells-fate", "message %s (chained=%t) is a dead letter on %s but its status says %q", r.id, r.chained, sink, ss)
			case dead && s.Sinks[sink].Reason == "":
				m.fail("deadletter-has-reason", "message %s: status failed on %s without a reason", r.id, sink)
			case dead:
			case ss == "dropped":
				r.final[sink] = "dropped"
				m.droppedSeen[sink]++
			case ss == "delivered":
				m.fail("status-tells-fate", "message %s (step %d, chained=%t, poison=%t) says delivered to %s, which never received it (dead letters discarded by the log's cap so far: %.0f)", r.id, r.step, r.chained, r.poison, sink, m.dlDiscarded())
			case ss == "failed":
				// failed but not listed: the dead-letter log discarded it (cap) or a purge the model did not make
			case settled:
				lost++
				if lost <= 3 {
					m.fail("every-message-leaves", "message %s (step %d, topic %s, poison=%t) neither delivered to %s nor dead-lettered nor dropped after settling; status %s", r.id, r.step, r.topic, r.poison, sink, s.raw)
				}
			}
		}
	}
	if lost > 0 {
		m.logf("  %d acknowledged messages without a fate", lost)
	}
	mt, _ := scrape(m.p)
	for s, n := range m.droppedSeen {
		if counted := m.droppedBase[s] + mt[fmt.Sprintf(`sluice_dropped_total{sink=%q}`, s)]; float64(n) > counted {
			m.fail("drops-counted", "%d messages of sink %s have status dropped, sluice_dropped_total counted %.0f", n, s, counted)
		}
	}
}

// dlDiscarded is sluice_deadletters_discarded_total now.
func (m *model) dlDiscarded() float64 {
	mt, _ := scrape(m.p)
	return mt["sluice_deadletters_discarded_total"]
}

// checkTiny: tiny-flood messages (no token) were delivered to main or
// have a fate; at most 300 are asked per checkpoint.
func (m *model) checkTiny(main map[string]bool) {
	var open []string
	m.mu.Lock()
	for id := range m.tiny {
		if main[id] {
			delete(m.tiny, id)
		} else if len(open) < 300 {
			open = append(open, id)
		}
	}
	m.mu.Unlock()
	for id, s := range m.statuses(open) {
		switch s.Sinks["main"].Status {
		case "dropped", "failed":
			delete(m.tiny, id)
		default:
			m.fail("every-message-leaves", "tiny-flood message %s not delivered to main after settling; status %q", id, s.Status)
			return
		}
	}
}

// checkCallbacks: a report says the message's true state, and a report
// owed while the receiver stayed up and the agent alive arrives (see
// waitProgress).
func (m *model) checkCallbacks(got map[string]map[string]bool) {
	var missing []*msgRec
	var reports []cbReport
	waitProgress(func() (float64, bool) {
		reports = m.cb.callbackReports()
		missing = m.owedReports(reports)
		return float64(len(missing)), true
	})
	if mt, err := scrape(m.p); len(missing) > 0 && (err != nil || mt["sluice_draining"] == 1) {
		m.fail("control-not-reachable-by-data", "%d callback reports missing while the agent drains (or exited) although the model did not ask it to", len(missing))
	} else if len(missing) > 0 {
		r := missing[0]
		m.fail("callback-arrives", "%d reports missing, e.g. for %s (step %d): resolved, its callback receiver stayed up and the agent alive, but none arrived for %s", len(missing), r.id, r.step, modelStall)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, rep := range reports {
		r := m.byID[rep.ID]
		if r == nil {
			continue // a message whose outcome was unknown
		}
		if x := m.q.msgs[r.id]; (x == nil || !x.replayed) && slices.Contains([]string{"pending", "in_flight"}, rep.Sinks[modelQueue].Status) {
			m.fail("callback-after-resolution", "callback report for %s says %q on the queue: a report is sent when every target resolved the message (the consumer acknowledged it or it was dead-lettered)", r.id, rep.Sinks[modelQueue].Status)
		}
		if rep.Status == "delivered" {
			for _, s := range r.targets {
				if !got[s][r.id] {
					m.fail("callback-tells-fate", "callback report for %s (chained=%t poison=%t) says delivered; sink %s never received it", r.id, r.chained, r.poison, s)
				}
			}
		}
	}
}

// owedReports lists the resolved messages whose report must have arrived.
func (m *model) owedReports(reports []cbReport) []*msgRec {
	reported := map[string]bool{}
	for _, rep := range reports {
		reported[rep.ID] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var missing []*msgRec
	for _, r := range m.msgs {
		if r.out != acked || !r.callback || !r.cbStrict || reported[r.id] {
			continue
		}
		resolved := true
		for _, s := range r.targets {
			resolved = resolved && (r.final[s] != "" || m.dlEver[dlKey{r.id, s}])
		}
		if resolved {
			missing = append(missing, r)
		}
	}
	return missing
}

func keys(s map[string]bool) []string {
	out := make([]string, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
