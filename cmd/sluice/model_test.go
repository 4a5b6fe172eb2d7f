package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestModel is the model-based test: a seeded random state machine drives
// the real agent binary (real spool on disk, real HTTP, real signals)
// through pushes of every kind, sink and callback-receiver failures, kill -9
// and SIGTERM restarts, dead-letter replay and purge, floods, and a local
// work queue (sink jobs) whose consumer pulls, acks, nacks, extends,
// crashes and acks stale receipts (model_queue_test.go); it keeps a model of
// what each message's fate may be — on the queue: ready, leased to a
// receipt, acked or dead-lettered — and checks the invariants after every
// step and at quiescent checkpoints (model_check_test.go,
// model_queue_check_test.go). A failure
// prints the seed and the last operations; the same seed replays the same
// operation sequence (timing, being real, varies).
//
//	go test -run TestModel ./cmd/sluice                     # short profile (CI)
//	go test -run TestModel ./cmd/sluice -seed=42            # replay one seed
//	SLUICE_MODEL_SEED=42 go test -run TestModel ./cmd/sluice
//	SLUICE_MODEL=long SLUICE_MODEL_SEEDS=20 SLUICE_MODEL_STEPS=400 go test -run TestModel -timeout 3h ./cmd/sluice
//
// Environment: SLUICE_MODEL=long selects the long profile (more seeds and
// steps); SLUICE_MODEL_SEEDS and SLUICE_MODEL_STEPS override either
// profile's counts; SLUICE_MODEL_SEED (or -seed) runs that one seed;
// SLUICE_MODEL_FAILFAST=1 stops a seed at its first violation;
// SLUICE_MODEL_OPS=push.single,agent.kill9,… runs only the named operations.

var modelSeed = flag.Uint64("seed", 0, "TestModel: run only this seed (0 = SLUICE_MODEL_SEED or random)")

// modelProfile is how much the model runs.
type modelProfile struct {
	name         string
	seeds, steps int
}

func modelProfileFromEnv(t *testing.T) modelProfile {
	p := modelProfile{name: "short", seeds: 2, steps: 20}
	if os.Getenv("SLUICE_MODEL") == "long" {
		p = modelProfile{name: "long", seeds: 10, steps: 300}
	}
	for _, v := range []struct {
		env string
		dst *int
	}{{"SLUICE_MODEL_SEEDS", &p.seeds}, {"SLUICE_MODEL_STEPS", &p.steps}} {
		if s := os.Getenv(v.env); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				t.Fatalf("%s=%q: a positive number expected", v.env, s)
			}
			*v.dst = n
		}
	}
	return p
}

func TestModel(t *testing.T) {
	prof := modelProfileFromEnv(t)
	var seeds []uint64
	switch {
	case *modelSeed != 0:
		seeds = []uint64{*modelSeed}
	case os.Getenv("SLUICE_MODEL_SEED") != "":
		s, err := strconv.ParseUint(os.Getenv("SLUICE_MODEL_SEED"), 10, 64)
		if err != nil || s == 0 {
			t.Fatalf("SLUICE_MODEL_SEED: a positive number expected")
		}
		seeds = []uint64{s}
	default:
		// Consecutive seeds: the configuration variants (modelConfigFor)
		// alternate with the seed's low bits, so any two runs cover both
		// backlog policies.
		base := uint64(time.Now().UnixNano())%1_000_000_000 + 1
		for i := range prof.seeds {
			seeds = append(seeds, base+uint64(i))
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			runModel(t, seed, prof.steps, prof.name)
		})
	}
}

// modelConfig is the agent configuration of one seed.
type modelConfig struct {
	optPolicy     string // backlog policy of the optional sink
	appendTimeout string // SLUICE_SPOOL_APPEND_TIMEOUT; tiny = spool_timeout outcomes happen
	tightDL       bool   // SLUICE_DEADLETTER_MAX_BYTES = SLUICE_MAX_MESSAGE_BYTES
	ordered       bool   // SLUICE_JOBS_ORDERED: per-key ordering on the queue
}

// Sizes of the model's agent.
const (
	modelSpoolMax   = 20 << 20  // SLUICE_SPOOL_MAX_BYTES
	modelSegment    = 256 << 10 // SLUICE_SPOOL_SEGMENT_BYTES
	modelOptBacklog = 1 << 20   // SLUICE_OPT_MAX_BACKLOG_BYTES
	modelMaxMessage = 64 << 10  // SLUICE_MAX_MESSAGE_BYTES in the tightDL variant
	modelDrain      = 2 * time.Second
	// modelExitGrace is what SIGTERM may take beyond the drain timeout
	// (persisting cursors, closing sinks, a race-enabled binary).
	modelExitGrace = 5 * time.Second
	// The live heap stays under modelHeapBase plus modelReadAhead (the
	// forwarder's per-sink read-ahead budget) for each sink with a backlog.
	modelHeapBase  = 32 << 20
	modelReadAhead = 16 << 20
	// A wait for the backlog to drain (or reports to arrive) ends when
	// nothing moved for modelStall, and in any case after modelSettle.
	modelStall  = 5 * time.Second
	modelSettle = 60 * time.Second
)

func modelConfigFor(seed uint64) modelConfig {
	c := modelConfig{optPolicy: "reject", appendTimeout: "5s"}
	if seed%2 == 1 {
		c.optPolicy = "drop_oldest"
	}
	if seed/2%3 == 0 {
		c.appendTimeout = "50ms"
	}
	c.tightDL = seed/2%2 == 1
	c.ordered = seed%2 == 0 // consecutive seeds: one of each
	return c
}

// topics and where they go: a → main, b → main + opt, c → opt, d → arch +
// the queue jobs, q → jobs.
var modelTargets = map[string][]string{"a": {"main"}, "b": {"main", "opt"}, "c": {"opt"}, "d": {"arch", modelQueue}, "q": {modelQueue}}

func (m *model) env() []string {
	env := []string{
		"SLUICE_SPOOL_DIR=" + filepath.Join(m.dir, "spool"),
		"SLUICE_SPOOL_MAX_BYTES=" + strconv.Itoa(modelSpoolMax),
		"SLUICE_SPOOL_SEGMENT_BYTES=" + strconv.Itoa(modelSegment),
		"SLUICE_SPOOL_APPEND_TIMEOUT=" + m.cfg.appendTimeout,
		"SLUICE_DRAIN_TIMEOUT=" + modelDrain.String(),
		"SLUICE_SINKS=main,opt,arch," + modelQueue,
		"SLUICE_MAIN_TYPE=http", "SLUICE_MAIN_URL=" + m.main.url + "/v1/messages", "SLUICE_MAIN_TOPICS=a,b",
		"SLUICE_MAIN_TIMEOUT=1s", "SLUICE_MAIN_RETRY_MIN=10ms", "SLUICE_MAIN_RETRY_MAX=200ms",
		"SLUICE_OPT_TYPE=http", "SLUICE_OPT_URL=" + m.opt.url + "/v1/messages", "SLUICE_OPT_TOPICS=b,c",
		"SLUICE_OPT_TIMEOUT=1s", "SLUICE_OPT_RETRY_MIN=10ms", "SLUICE_OPT_RETRY_MAX=200ms",
		"SLUICE_OPT_MAX_BACKLOG_BYTES=" + strconv.Itoa(modelOptBacklog), "SLUICE_OPT_BACKLOG_POLICY=" + m.cfg.optPolicy,
		"SLUICE_ARCH_TYPE=file", "SLUICE_ARCH_PATH=" + m.archDir, "SLUICE_ARCH_TOPICS=d",
		"SLUICE_JOBS_TYPE=queue", "SLUICE_JOBS_TOPICS=d,q", "SLUICE_JOBS_VISIBILITY=" + modelQueueVis.String(),
		"SLUICE_JOBS_MAX_ATTEMPTS=" + strconv.Itoa(modelQueueMaxAttempts), "SLUICE_JOBS_ORDERED=" + strconv.FormatBool(m.cfg.ordered),
	}
	if m.cfg.tightDL && !m.tightRefused {
		env = append(env, "SLUICE_MAX_MESSAGE_BYTES="+strconv.Itoa(modelMaxMessage),
			"SLUICE_MAX_REQUEST_BYTES=16MiB", "SLUICE_DEADLETTER_MAX_BYTES="+strconv.Itoa(modelMaxMessage))
	}
	return env
}

// opKind is one kind of step, with its weight in the random choice and
// whether every seed must run it at least once.
type opKind struct {
	name   string
	weight int
	cover  bool
	run    func(m *model)
}

func (m *model) ops() []opKind {
	ops := []opKind{
		{"push.single", 18, false, func(m *model) { m.opPush("single") }},
		{"push.ndjson", 10, false, func(m *model) { m.opPush("ndjson") }},
		{"push.batch", 10, true, func(m *model) { m.opPush("batch") }},
		{"push.retry", 6, true, (*model).opRetry},
		{"push.callbacks", 2, true, (*model).opCallbackBurst},
		{"sink.mode", 10, true, (*model).opSinkMode},
		{"sink.poison", 3, false, (*model).opPoison},
		{"callback.mode", 5, true, (*model).opCallbackMode},
		{"agent.kill9", 3, true, (*model).opKill9},
		{"agent.sigterm", 3, true, (*model).opSigterm},
		{"deadletter.replay", 4, true, (*model).opReplay},
		{"deadletter.purge", 2, true, (*model).opPurge},
		{"checkpoint", 4, false, (*model).checkpoint},
		{"flood.opt", 1, true, (*model).opFloodOpt},
		{"flood.callback", 1, true, (*model).opFloodCallback},
		{"idempotency.restart", 1, true, (*model).opIdemRestart},
		{"flood.tiny", 0, true, (*model).opFloodTiny}, // ~10 s: once per seed
		{"callback.control", 1, true, (*model).opControlCallback},
		{"queue.work", 12, true, (*model).opQueueWork},
		{"queue.crash", 3, true, (*model).opQueueCrash},
		{"queue.stale", 3, true, (*model).opQueueStale},
	}
	if m.cfg.tightDL {
		ops = append(ops, opKind{"push.maxpoison", 1, true, (*model).opMaxPoison})
	}
	if only := os.Getenv("SLUICE_MODEL_OPS"); only != "" {
		keep := ops[:0]
		for _, o := range ops {
			if slices.Contains(strings.Split(only, ","), o.name) {
				keep = append(keep, o)
			}
		}
		ops = keep
	}
	return ops
}

// schedule is the seed's operation sequence: every covered kind at least
// once at a random position, the rest drawn by weight.
func schedule(r *rand.Rand, ops []opKind, steps int) []opKind {
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	out := make([]opKind, steps)
	for i := range out {
		n := r.IntN(total)
		for _, o := range ops {
			if n -= o.weight; n < 0 {
				out[i] = o
				break
			}
		}
	}
	pos := r.Perm(steps)
	for _, o := range ops {
		if o.cover && len(pos) > 0 {
			out[pos[0]] = o
			pos = pos[1:]
		}
	}
	return out
}

func runModel(t *testing.T, seed uint64, steps int, profile string) {
	m := newModel(t, seed)
	m.begin = time.Now()
	defer m.close()
	replay := fmt.Sprintf("SLUICE_MODEL_SEED=%d SLUICE_MODEL_STEPS=%d", seed, steps)
	if ops := os.Getenv("SLUICE_MODEL_OPS"); ops != "" {
		replay += " SLUICE_MODEL_OPS=" + ops
	}
	t.Logf("profile %s, seed %d, %d steps, config %+v (replay: %s)", profile, seed, steps, m.cfg, replay)
	m.ensureAgent()
	sched := schedule(m.rng, m.ops(), steps)
	begin := time.Now()
	for i, op := range sched {
		m.step = i + 1
		m.logf("%s", op.name)
		op.run(m)
		m.afterStep()
		if m.stop {
			break
		}
	}
	m.step++
	m.logf("final checkpoint")
	m.checkpoint()
	t.Logf("seed %d: %d steps in %s: %d messages acknowledged, %d unknown outcomes, %d refused, %d restarts, %d checkpoints, %d violations",
		seed, len(sched), time.Since(begin).Round(time.Millisecond), m.stats.acked, m.stats.maybe, m.stats.refused, m.stats.restarts, m.stats.checkpoints, len(m.violations))
	qs := m.q.stats
	t.Logf("seed %d: queue (ordered=%t): %d hand-outs (%d redeliveries), %d acked, %d nacked, %d extended, %d receipts answered stale, %d dead letters (max_attempts), %d replayed",
		seed, m.cfg.ordered, qs.handouts, qs.redeliveries, qs.acked, qs.nacked, qs.extended, qs.stale, qs.dead, qs.replayed)
	if len(m.violations) > 0 {
		var b strings.Builder
		for _, v := range m.violations {
			fmt.Fprintf(&b, "\n[%s] ×%d, first at step %d: %s", v.invariant, m.seen[v.invariant], v.step, v.detail)
		}
		fmt.Fprintf(&b, "\n\noperations up to the first violation (replay: %s go test -race -run 'TestModel$' ./cmd/sluice):\n%s", replay, strings.Join(m.firstLog, "\n"))
		fmt.Fprintf(&b, "\n\nlast operations of the run:\n%s", strings.Join(m.tail(30), "\n"))
		t.Errorf("seed %d: %d invariant violations (%d distinct):%s", seed, m.violationCount, len(m.violations), b.String())
		if m.p != nil {
			t.Logf("agent log (tail):\n%s", lastLines(m.p.logs(), 40))
		}
	}
}

// violation is the first occurrence of one invariant's failure.
type violation struct {
	invariant, detail string
	step              int
}

// fail records a violation; the first of each invariant is kept with the
// operation log at that moment.
func (m *model) fail(invariant, format string, args ...any) {
	m.violationCount++
	m.seen[invariant]++
	detail := fmt.Sprintf(format, args...)
	if m.seen[invariant] <= 2 {
		m.logf("VIOLATION %s: %s", invariant, detail)
	}
	if m.seen[invariant] > 1 {
		return
	}
	m.violations = append(m.violations, violation{invariant: invariant, detail: detail, step: m.step})
	if m.firstLog == nil {
		m.firstLog = m.tail(60)
	}
	if os.Getenv("SLUICE_MODEL_FAILFAST") == "1" {
		m.stop = true
	}
}

func (m *model) logf(format string, args ...any) {
	line := fmt.Sprintf("%4d %6.1fs %s", m.step, time.Since(m.begin).Seconds(), fmt.Sprintf(format, args...))
	m.oplog = append(m.oplog, line)
	if testing.Verbose() && os.Getenv("SLUICE_MODEL_TRACE") == "1" {
		m.t.Log(line)
	}
}

func (m *model) tail(n int) []string {
	if len(m.oplog) > n {
		return append([]string(nil), m.oplog[len(m.oplog)-n:]...)
	}
	return append([]string(nil), m.oplog...)
}
