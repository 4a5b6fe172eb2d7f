package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The agent's life in the model: start, exits it was not asked for,
// kill -9, SIGTERM, and the operations built around a restart or aimed at
// the agent itself.

// ensureAgent starts the agent on the seed's spool when it is not running.
// A refused tightDL configuration is what a fixed validator does: the
// model notes it and runs without that variant.
func (m *model) ensureAgent() {
	if alive(m.p) {
		return
	}
	p, err := startAgent(m.env())
	if err != nil && m.cfg.tightDL && !m.tightRefused && (strings.Contains(err.Error(), "DEADLETTER_MAX_BYTES") || strings.Contains(err.Error(), "MAX_MESSAGE_BYTES")) {
		m.logf("agent refused the tight dead-letter configuration (the validator knows the envelope): %v", err)
		m.tightRefused = true
		p, err = startAgent(m.env())
	}
	if err != nil {
		m.fail("agent-starts", "the agent does not start on its spool: %v", err)
		m.t.Fatalf("seed %d: cannot continue without an agent: %v\nlast operations:\n%s", m.seed, err, strings.Join(m.tail(40), "\n"))
	}
	m.p = p
	m.purgedSince = 0
	m.stats.restarts++
	m.logf("agent started (%s)", p.url)
}

// afterStep runs the checks that are cheap enough for every step.
func (m *model) afterStep() {
	m.checkAlive()
	m.checkHeap()
}

// checkAlive: the agent never exits unless the model signalled it. An
// agent that exited is restarted.
func (m *model) checkAlive() {
	if m.p == nil {
		return
	}
	if err, exited := exitedWithin(m.p, 0); exited {
		m.fail("no-unasked-exit", "the agent exited without being signalled: %v: %s", err, lastLines(m.p.logs(), 3))
		m.stopped(nil)
		m.ensureAgent()
	}
}

// stopped is called after the agent process ended: drop counters of the
// old process are kept, reports in flight may be lost.
func (m *model) stopped(last map[string]float64) {
	for _, s := range []string{"main", "opt", "arch"} {
		m.droppedBase[s] += last[fmt.Sprintf(`sluice_dropped_total{sink=%q}`, s)]
	}
	m.weakenCallbacks()
	m.queueStopped()
	m.p = nil
}

// opKill9 kills the agent with SIGKILL while a background client pushes,
// then restarts it on the same spool.
func (m *model) opKill9() {
	p := m.p
	stop := make(chan struct{})
	var wg sync.WaitGroup
	reqs := make([]*request, 40)
	for i := range reqs {
		reqs[i] = m.buildPush(m.pick("single", "ndjson"))
		reqs[i].header.Del("Sluice-Ack")
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, req := range reqs {
			select {
			case <-stop:
				return
			default:
			}
			m.record(req, m.send(p, req))
		}
	}()
	time.Sleep(time.Duration(20+m.rng.IntN(200)) * time.Millisecond)
	last, _ := scrape(p)
	kill9Proc(p)
	close(stop)
	wg.Wait()
	m.stopped(last)
	m.logf("  kill -9 during pushes")
	m.ensureAgent()
}

// opSigterm terminates the agent (sometimes right after a burst of
// callback reports) and checks that it exits 0 within the drain timeout
// plus a grace, then restarts it.
func (m *model) opSigterm() {
	if m.chance(0.5) {
		m.opCallbackBurst()
	}
	p := m.p
	last, _ := scrape(p)
	begin := time.Now()
	p.cmd.Process.Signal(os.Interrupt)
	err, exited := exitedWithin(p, modelDrain+modelExitGrace)
	took := time.Since(begin).Round(time.Millisecond)
	if !exited {
		before := len(p.logs())
		p.cmd.Process.Signal(syscall.SIGQUIT) // the Go runtime dumps every goroutine
		if _, ok := exitedWithin(p, 5*time.Second); !ok {
			kill9Proc(p)
		}
		m.fail("sigterm-exits", "SIGTERM: still running after %s (drain timeout %s + grace %s); SIGQUIT. Sinks main=%s opt=%s, callback receiver %s. Agent frames of the blocked goroutines:\n%s",
			took, modelDrain, modelExitGrace, m.main.getMode(), m.opt.getMode(), m.cb.getMode(), agentFrames(p.logs()[before:]))
	} else if err != nil {
		m.fail("sigterm-exit-0", "SIGTERM: exit %v after %s: %s", err, took, lastLines(p.logs(), 3))
	}
	m.logf("  SIGTERM: exited=%t after %s", exited, took)
	m.stopped(last)
	m.ensureAgent()
}

// opIdemRestart pushes a keyed message, then more than two segments of
// other traffic (so the spool may truncate the record that holds the key),
// restarts the agent and retries the keyed push: the key is remembered for
// its whole window, across restarts and truncation.
func (m *model) opIdemRestart() {
	m.main.setMode(modeUp)
	req := m.buildPush("single")
	req.path = "/v1/topics/a"
	req.idem = "idem-" + m.token()
	req.header.Set("Idempotency-Key", req.idem)
	req.header.Del("Sluice-Callback")
	for _, r := range req.msgs {
		r.topic, r.targets, r.idem, r.callback, r.cbStrict = "a", modelTargets["a"], req.idem, false, false
	}
	req.desc = fmt.Sprintf("single /v1/topics/a idem=%q (kept across a restart)", req.idem)
	m.push(req)
	for range 8 { // 8 × 100 × 1 KiB > 2 segments of 256 KiB
		filler := &request{header: http.Header{}, path: "/v1/topics/a", desc: "filler a"}
		filler.header.Set("Content-Type", "application/x-ndjson")
		var body bytes.Buffer
		for range 100 {
			r := &msgRec{token: m.token(), topic: "a", targets: modelTargets["a"], step: m.step, final: map[string]string{}}
			filler.msgs = append(filler.msgs, r)
			body.Write(floodValue(r.token, 1<<10))
			body.WriteByte('\n')
		}
		filler.body = body.Bytes()
		m.sendRetry(filler, false)
	}
	m.drainSinks("main")
	m.opSigterm()
	rep := m.send(m.p, req)
	m.record(req, rep)
	m.logf("  retry after restart: %s → %d %s ids=%v replay=%t", req.desc, rep.code, rep.Code, short(rep.IDs), rep.Replay)
}

// agentFrames summarizes a goroutine dump: how many goroutines wait in each
// state at each frame of the agent package.
func agentFrames(dump string) string {
	count := map[string]int{}
	state := ""
	for _, line := range strings.Split(dump, "\n") {
		if strings.HasPrefix(line, "goroutine ") {
			if i := strings.Index(line, "["); i >= 0 {
				state = strings.TrimSuffix(line[i+1:], "]:")
			}
			continue
		}
		if i := strings.Index(line, "/agent/"); i >= 0 && strings.HasPrefix(line, "\t") {
			frame := line[i+1:]
			if j := strings.Index(frame, " +0x"); j >= 0 {
				frame = frame[:j]
			}
			count[state+" @ "+frame]++
		}
	}
	var out []string
	for k, n := range count {
		out = append(out, fmt.Sprintf("    %4d × %s", n, k))
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// opControlCallback pushes a message whose callback URL is the agent's
// own control endpoint. The agent must refuse the URL (400
// callback_not_allowed) or never call it; the model watches for dead
// letters vanishing, purges it did not make and the agent exiting.
func (m *model) opControlCallback() {
	target := "/v1/control/deadletters/purge"
	if m.chance(0.3) {
		target = "/v1/control/drain"
	}
	req := m.buildPush("single")
	req.header.Set("Sluice-Callback", m.p.url+target)
	req.desc += " callback→" + target
	for _, r := range req.msgs {
		r.callback, r.cbStrict = false, false
	}
	m.push(req)
}

// opMaxPoison pushes a message of exactly SLUICE_MAX_MESSAGE_BYTES that the
// sink refuses: with the dead-letter cap equal to the message cap it must
// still leave (dead-lettered), or the configuration must have been refused.
func (m *model) opMaxPoison() {
	if m.tightRefused {
		m.opPush("single")
		return
	}
	topic := m.pick("a", "c")
	r := &msgRec{token: m.token(), topic: topic, targets: modelTargets[topic], poison: true, step: m.step, final: map[string]string{}}
	head := fmt.Sprintf(`{"t":%q,"poison":true,"pad":"`, r.token)
	v := head + strings.Repeat("x", modelMaxMessage-len(head)-2) + `"}`
	req := &request{header: http.Header{}, path: "/v1/topics/" + topic, body: []byte(v), msgs: []*msgRec{r}, desc: "max-size poison " + topic}
	(map[string]*receiver{"a": m.main, "c": m.opt})[topic].setRefusePoison(true)
	m.push(req)
}

func equalIDs(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// short abbreviates an id list for the log.
func short(ids []string) string {
	if len(ids) <= 3 {
		return fmt.Sprint(ids)
	}
	return fmt.Sprintf("[%s %s … %s (%d)]", ids[0], ids[1], ids[len(ids)-1], len(ids))
}
