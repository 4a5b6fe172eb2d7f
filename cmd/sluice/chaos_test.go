package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluiceio/sluice/internal/loadgen"
	"github.com/sluiceio/sluice/spool"
)

// The chaos suite drives the real agent binary under load and kills it:
// kill -9 at random moments, during a drain, during a dead-letter replay and
// while the spool truncates its front; the Kafka broker (kfake, in this
// process) goes away and comes back, alone and together with the agent.
// Every scenario runs with SLUICE_SPOOL_SYNC=always and passes when no
// acknowledged message is lost. Duplicates are allowed (at-least-once) and
// reported per crash. "go test -v -run Chaos" prints one summary line per
// scenario.
//
// SLUICE_CHAOS=long runs the long profile (over a hundred agent kills);
// the default short profile keeps CI fast. SLUICE_CHAOS_SEED=N repeats the
// random timing choices of an earlier run (each test logs its seed).

// chaosProfile sizes the scenarios.
type chaosProfile struct {
	name          string
	kills         int // kill -9 cycles under load
	brokerOutages int // broker stops while the agent keeps running
	bothCycles    int // agent kill during a broker outage
	drainKills    int // SIGTERM, then SIGKILL during the drain
	replayKills   int // kill -9 during a dead-letter replay
	truncKills    int // kill -9 with 64 KiB segments rolling and truncating
	replayCount   int // messages pushed in the replay scenario
}

func chaosProfileFromEnv() chaosProfile {
	if os.Getenv("SLUICE_CHAOS") == "long" {
		return chaosProfile{name: "long", kills: 100, brokerOutages: 10, bothCycles: 15, drainKills: 20, replayKills: 10, truncKills: 30, replayCount: 8000}
	}
	return chaosProfile{name: "short", kills: 5, brokerOutages: 2, bothCycles: 2, drainKills: 2, replayKills: 1, truncKills: 3, replayCount: 1200}
}

// chaosRand returns the random source of one test, seeded from
// SLUICE_CHAOS_SEED or the clock, and logs the seed.
func chaosRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SLUICE_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SLUICE_CHAOS_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("profile %s, seed %d (SLUICE_CHAOS_SEED=%d repeats the timing choices)", chaosProfileFromEnv().name, seed, seed)
	return rand.New(rand.NewPCG(seed, seed>>1|1))
}

// between returns a random duration in [lo, hi).
func between(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64(hi-lo)))
}

// chaosLoad is the load of one run: NDJSON pushes of 10 messages on 4
// connections, 16 keys over two topics, every acknowledged id recorded.
// The run ends when its context is cancelled (at the latest after a
// minute) or after count messages.
func chaosLoad(url, runID, topic string, count int64) loadgen.Config {
	c := loadgen.Config{
		URL: url, Mode: loadgen.ModeNDJSON, Batch: 10, Size: 200, Connections: 4,
		Keys: 16, Topic: topic, Topics: 2, Verify: true, RunID: runID,
		Timeout: 5 * time.Second, Count: count,
	}
	if count == 0 {
		c.Duration = time.Minute
	}
	return c
}

// loadRun is a load generator running in the background.
type loadRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	rep    loadgen.Report
	err    error
}

func startLoad(cfg loadgen.Config) *loadRun {
	ctx, cancel := context.WithCancel(context.Background())
	l := &loadRun{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		l.rep, l.err = loadgen.Run(ctx, cfg)
	}()
	return l
}

// stop ends the run and returns its report.
func (l *loadRun) stop(t *testing.T) loadgen.Report {
	t.Helper()
	l.cancel()
	return l.wait(t)
}

// wait waits for the run to end by itself.
func (l *loadRun) wait(t *testing.T) loadgen.Report {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(90 * time.Second):
		t.Fatal("load generator did not stop")
	}
	if l.err != nil {
		t.Fatalf("load: %v", l.err)
	}
	return l.rep
}

// kill9 sends SIGKILL and waits for the process to be gone.
func kill9(t *testing.T, p *proc) {
	t.Helper()
	p.cmd.Process.Kill()
	p.wait(t)
}

// stopAgent ends an agent with SIGTERM (drain) at the end of a test.
func stopAgent(t *testing.T, p *proc) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t)
}

// chaosRun is one load run and how it ended.
type chaosRun struct {
	rep   loadgen.Report
	event string // what happened at its end ("kill -9 after 412ms")
}

// chaosTotals sums the verification of every run.
type chaosTotals struct {
	acked, lost, dups, unexpected, outOfOrder int
}

// verifyRuns checks each run against delivered (all deliveries of the
// sink, in the order the sink received them), logs one line per run and
// fails the test on a lost message (or one out of order, when checkOrder).
func verifyRuns(t *testing.T, runs []chaosRun, delivered []loadgen.Delivered, checkOrder bool) chaosTotals {
	t.Helper()
	byRun := map[string][]loadgen.Delivered{}
	for _, d := range delivered {
		byRun[d.Run] = append(byRun[d.Run], d)
	}
	var tot chaosTotals
	for i, r := range runs {
		v := loadgen.Verify(r.rep.AckedIDs, byRun[r.rep.RunID])
		t.Logf("  run %d (%s): %d acked, %d lost, %d duplicates, %d out of order, %d unexpected (outcome-unknown pushes that were spooled), errors %v",
			i, r.event, v.Acked, v.Lost, v.Duplicates, v.OutOfOrder, v.Unexpected, r.rep.Errors)
		tot.acked += v.Acked
		tot.lost += v.Lost
		tot.dups += v.Duplicates
		tot.unexpected += v.Unexpected
		tot.outOfOrder += v.OutOfOrder
		if v.Lost != 0 {
			t.Errorf("run %d (%s): %d acknowledged messages lost, e.g. %v", i, r.event, v.Lost, v.LostIDs)
		}
		if checkOrder && v.OutOfOrder != 0 {
			t.Errorf("run %d (%s): %d messages out of order per key, e.g. %v", i, r.event, v.OutOfOrder, v.OutOfOrderIDs)
		}
	}
	return tot
}

func readFileSinkAll(t *testing.T, dir string) []loadgen.Delivered {
	t.Helper()
	got, err := loadgen.ReadFileSink(dir)
	if err != nil {
		t.Fatalf("read file sink: %v", err)
	}
	return got
}

func maxDuration(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// TestChaosKill9: kill -9 at a random moment under load, restart, N times;
// every acknowledged message reaches the file sink.
func TestChaosKill9(t *testing.T) {
	t.Parallel()
	prof, rng := chaosProfileFromEnv(), chaosRand(t)
	dir := t.TempDir()
	out, sp := filepath.Join(dir, "out"), filepath.Join(dir, "spool")
	env := append(fileSinkEnv(sp, out), "SLUICE_SPOOL_SYNC=always")
	p := start(t, env...)
	var runs []chaosRun
	var outages []time.Duration
	for c := 0; c < prof.kills; c++ {
		l := startLoad(chaosLoad(p.url, fmt.Sprintf("kill9-%d", c), "k9", 0))
		after := between(rng, 150*time.Millisecond, 700*time.Millisecond)
		time.Sleep(after)
		killed := time.Now()
		kill9(t, p)
		rep := l.stop(t)
		p = start(t, env...)
		outages = append(outages, time.Since(killed))
		runs = append(runs, chaosRun{rep: rep, event: fmt.Sprintf("kill -9 after %v of load, back in %v", after.Round(time.Millisecond), outages[c].Round(time.Millisecond))})
	}
	waitBacklogEmpty(t, p)
	tot := verifyRuns(t, runs, readFileSinkAll(t, out), true)
	stopAgent(t, p)
	t.Logf("chaos kill9: %d kill -9 cycles, %d acked, %d lost, %d duplicates, %d out of order, agent outage max %v (kill to ready)",
		prof.kills, tot.acked, tot.lost, tot.dups, tot.outOfOrder, maxDuration(outages).Round(time.Millisecond))
}

// kfakeBroker is a one-broker kfake cluster that can stop and come back on
// the same port with its data (DataDir + SyncWrites).
type kfakeBroker struct {
	t    *testing.T
	c    *kfake.Cluster
	addr string
	port int
	data string
}

func newKfakeBroker(t *testing.T, topics ...string) *kfakeBroker {
	t.Helper()
	data := t.TempDir()
	c, addr := newKfake(t, kfake.SeedTopics(3, topics...), kfake.DataDir(data), kfake.SyncWrites())
	_, port, _ := net.SplitHostPort(addr)
	b := &kfakeBroker{t: t, c: c, addr: addr, data: data}
	b.port, _ = strconv.Atoi(port)
	t.Cleanup(func() {
		if b.c != nil {
			b.c.Close()
		}
	})
	return b
}

func (b *kfakeBroker) stop() {
	b.c.Close()
	b.c = nil
}

func (b *kfakeBroker) restart() {
	b.t.Helper()
	var err error
	for i := 0; i < 100; i++ { // the port can take a moment to be free again
		b.c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(b.port), kfake.DataDir(b.data), kfake.SyncWrites())
		if err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("restart broker: %v", err)
}

func kafkaEnv(broker string) []string {
	return []string{"SLUICE_SPOOL_SYNC=always", "SLUICE_SINKS=kafka", "SLUICE_KAFKA_BROKERS=" + broker,
		"SLUICE_KAFKA_RETRY_MAX=300ms", "SLUICE_KAFKA_WRITE_TIMEOUT=2s", "SLUICE_KAFKA_DIAL_TIMEOUT=1s"}
}

func readKafkaAll(t *testing.T, broker string, topics []string) []loadgen.Delivered {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	got, err := loadgen.ReadKafka(ctx, []string{broker}, topics)
	if err != nil {
		t.Fatalf("read kafka: %v", err)
	}
	return got
}

// TestChaosBrokerRestart: the broker stops and comes back several times
// while the agent keeps running under load; pushes keep being answered
// 202 and every acknowledged message reaches Kafka, in order per key.
func TestChaosBrokerRestart(t *testing.T) {
	t.Parallel()
	prof, rng := chaosProfileFromEnv(), chaosRand(t)
	topics := []string{"brk-0", "brk-1"}
	b := newKfakeBroker(t, topics...)
	p := start(t, append(kafkaEnv(b.addr), "SLUICE_SPOOL_DIR="+t.TempDir())...)
	l := startLoad(chaosLoad(p.url, "broker", "brk", 0))
	var outages []time.Duration
	for i := 0; i < prof.brokerOutages; i++ {
		time.Sleep(between(rng, 300*time.Millisecond, 800*time.Millisecond))
		b.stop()
		down := time.Now()
		time.Sleep(between(rng, time.Second, 3*time.Second))
		b.restart()
		outages = append(outages, time.Since(down))
		t.Logf("  broker outage %d: %v", i, outages[i].Round(time.Millisecond))
	}
	time.Sleep(500 * time.Millisecond)
	rep := l.stop(t)
	if len(rep.Errors) != 0 || rep.Acked == 0 {
		t.Errorf("pushes failed while the broker was down: %v %v", rep.Errors, rep.ErrorSamples)
	}
	waitBacklogEmpty(t, p)
	tot := verifyRuns(t, []chaosRun{{rep: rep, event: fmt.Sprintf("%d broker outages", len(outages))}}, readKafkaAll(t, b.addr, topics), true)
	stopAgent(t, p)
	var sum time.Duration
	for _, o := range outages {
		sum += o
	}
	t.Logf("chaos broker: %d broker outages (longest %v, %v in all) with the agent running, %d acked, %d lost, %d duplicates, %d out of order, %d push errors",
		len(outages), maxDuration(outages).Round(time.Millisecond), sum.Round(time.Millisecond), tot.acked, tot.lost, tot.dups, tot.outOfOrder, rep.ErrorCount())
}

// TestChaosAgentAndBroker: the broker goes down, the agent is killed with
// kill -9 during that outage and restarted while the broker is still down,
// then the broker comes back; N times.
func TestChaosAgentAndBroker(t *testing.T) {
	t.Parallel()
	prof, rng := chaosProfileFromEnv(), chaosRand(t)
	topics := []string{"both-0", "both-1"}
	b := newKfakeBroker(t, topics...)
	env := append(kafkaEnv(b.addr), "SLUICE_SPOOL_DIR="+t.TempDir())
	p := start(t, env...)
	var runs []chaosRun
	var brokerOut, agentOut []time.Duration
	for c := 0; c < prof.bothCycles; c++ {
		l := startLoad(chaosLoad(p.url, fmt.Sprintf("both-%d-a", c), "both", 0))
		time.Sleep(between(rng, 200*time.Millisecond, 600*time.Millisecond))
		b.stop()
		down := time.Now()
		time.Sleep(between(rng, 100*time.Millisecond, 600*time.Millisecond))
		killed := time.Now()
		kill9(t, p)
		runs = append(runs, chaosRun{rep: l.stop(t), event: fmt.Sprintf("cycle %d: kill -9 during a broker outage", c)})
		p = start(t, env...) // the broker is still down: the agent starts anyway
		agentOut = append(agentOut, time.Since(killed))
		l = startLoad(chaosLoad(p.url, fmt.Sprintf("both-%d-b", c), "both", 0))
		time.Sleep(between(rng, 300*time.Millisecond, 1200*time.Millisecond))
		b.restart()
		brokerOut = append(brokerOut, time.Since(down))
		time.Sleep(between(rng, 200*time.Millisecond, 600*time.Millisecond))
		rep := l.stop(t)
		if len(rep.Errors) != 0 {
			t.Errorf("cycle %d: pushes failed after the restart, broker down: %v %v", c, rep.Errors, rep.ErrorSamples)
		}
		runs = append(runs, chaosRun{rep: rep, event: fmt.Sprintf("cycle %d: restarted agent, broker back after %v", c, brokerOut[c].Round(time.Millisecond))})
	}
	waitBacklogEmpty(t, p)
	tot := verifyRuns(t, runs, readKafkaAll(t, b.addr, topics), true)
	stopAgent(t, p)
	t.Logf("chaos agent+broker: %d cycles (kill -9 inside a broker outage), %d acked, %d lost, %d duplicates, %d out of order, broker outage max %v, agent outage max %v",
		prof.bothCycles, tot.acked, tot.lost, tot.dups, tot.outOfOrder, maxDuration(brokerOut).Round(time.Millisecond), maxDuration(agentOut).Round(time.Millisecond))
}

// TestChaosKillDuringDrain: with a backlog (a slow upstream), SIGTERM
// starts the drain and SIGKILL ends it shortly after; N times. What the
// drain did not deliver is delivered after the restart.
func TestChaosKillDuringDrain(t *testing.T) {
	t.Parallel()
	prof, rng := chaosProfileFromEnv(), chaosRand(t)
	rcv := newUpstream(t)
	rcv.delay.Store(int64(15 * time.Millisecond))
	env := append(httpSinkEnv(t.TempDir(), rcv.url()), "SLUICE_UP_BATCH_MESSAGES=20", "SLUICE_DRAIN_TIMEOUT=30s")
	p := start(t, env...)
	var runs []chaosRun
	early := 0
	for c := 0; c < prof.drainKills; c++ {
		l := startLoad(chaosLoad(p.url, fmt.Sprintf("drain-%d", c), "drain", 0))
		time.Sleep(between(rng, 300*time.Millisecond, 800*time.Millisecond))
		var st struct {
			Sinks []struct {
				BacklogMessages int `json:"backlog_messages"`
			}
		}
		getJSON(t, p.admin+"/v1/stats", &st)
		p.cmd.Process.Signal(syscall.SIGTERM)
		after := between(rng, 20*time.Millisecond, 400*time.Millisecond)
		time.Sleep(after)
		event := fmt.Sprintf("SIGTERM with %d messages backlog, SIGKILL %v later", st.Sinks[0].BacklogMessages, after.Round(time.Millisecond))
		select {
		case err := <-p.exited:
			p.exited <- err
			early++
			event += " (the drain had already finished)"
		default:
			kill9(t, p)
		}
		rep := l.stop(t)
		runs = append(runs, chaosRun{rep: rep, event: event})
		p = start(t, env...)
	}
	rcv.delay.Store(0)
	waitBacklogEmpty(t, p)
	tot := verifyRuns(t, runs, rcv.delivered(), true)
	stopAgent(t, p)
	t.Logf("chaos drain: %d SIGTERM+SIGKILL cycles (%d drains finished before the kill), %d acked, %d lost, %d duplicates, %d out of order",
		prof.drainKills, early, tot.acked, tot.lost, tot.dups, tot.outOfOrder)
}

// dlTotal is the number of live dead letters.
func dlTotal(t *testing.T, p *proc) int {
	t.Helper()
	var v struct{ Total int }
	resp, err := p.control("GET", "/v1/control/deadletters?limit=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v.Total
}

// replayDeadLetters asks for a dead-letter replay; it returns the count,
// or -1 when the agent died first.
func replayDeadLetters(p *proc) int {
	resp, err := p.control("POST", "/v1/control/deadletters/replay")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var v struct{ Replayed int }
	if json.NewDecoder(resp.Body).Decode(&v) != nil || resp.StatusCode != http.StatusOK {
		return -1
	}
	return v.Replayed
}

// TestChaosKillDuringReplay: an upstream refuses (400) every batch holding
// a poison message, so the agent dead-letters exactly those; the upstream
// is fixed, the dead letters replayed, and the agent killed with kill -9
// in the middle of the replay; after the restart the replay is repeated.
// Every dead-lettered message is finally delivered (at least once), and
// every other acknowledged message too.
func TestChaosKillDuringReplay(t *testing.T) {
	t.Parallel()
	prof, rng := chaosProfileFromEnv(), chaosRand(t)
	rcv := newUpstream(t)
	isPoison := func(d loadgen.Delivered) bool { return d.N%4 == 0 }
	rcv.setPoison(isPoison)
	env := append(httpSinkEnv(t.TempDir(), rcv.url()), "SLUICE_UP_BATCH_MESSAGES=10")
	p := start(t, env...)
	rep := startLoad(chaosLoad(p.url, "replay", "replay", int64(prof.replayCount))).wait(t)
	if len(rep.Errors) != 0 {
		t.Fatalf("pushes failed: %v", rep.Errors)
	}
	poison := map[string]bool{}
	for _, a := range rep.AckedIDs {
		if isPoison(loadgen.Delivered{N: a.N}) {
			poison[a.ID] = true
		}
	}
	waitBacklogEmpty(t, p)
	if n := dlTotal(t, p); n != len(poison) {
		t.Fatalf("%d dead letters, want %d (one per poison message)", n, len(poison))
	}
	t.Logf("  %d messages pushed, %d dead-lettered by the upstream's 400", rep.Acked, len(poison))

	rcv.setPoison(nil) // the upstream is fixed
	rcv.delay.Store(int64(5 * time.Millisecond))
	for c := 0; c < prof.replayKills; c++ {
		res := make(chan int, 1)
		go func() { res <- replayDeadLetters(p) }()
		after := between(rng, 0, 150*time.Millisecond)
		time.Sleep(after)
		kill9(t, p)
		n := <-res
		before := countDelivered(rcv.delivered(), poison)
		t.Logf("  replay %d: kill -9 %v after the request (replay answered %d; -1 = no answer), %d of %d dead letters delivered so far",
			c, after.Round(time.Millisecond), n, before, len(poison))
		p = start(t, env...)
	}
	n := replayDeadLetters(p)
	rcv.delay.Store(0)
	waitBacklogEmpty(t, p)
	if left := dlTotal(t, p); left != 0 {
		t.Errorf("%d dead letters left after the final replay", left)
	}
	got := rcv.delivered()
	if d := countDelivered(got, poison); d != len(poison) {
		t.Errorf("%d of %d dead-lettered messages delivered after the replays", d, len(poison))
	}
	tot := verifyRuns(t, []chaosRun{{rep: rep, event: "pushed, dead-lettered, replayed"}}, got, false)
	stopAgent(t, p)
	t.Logf("chaos replay: %d kill -9 during replay, final replay took %d, %d dead letters, %d delivered after replay, %d acked, %d lost, %d duplicates",
		prof.replayKills, n, len(poison), countDelivered(got, poison), tot.acked, tot.lost, tot.dups)
}

// countDelivered counts the distinct ids of want found in got.
func countDelivered(got []loadgen.Delivered, want map[string]bool) int {
	seen := map[string]bool{}
	for _, d := range got {
		if want[d.ID] {
			seen[d.ID] = true
		}
	}
	return len(seen)
}

// scrapeMetric reads one unlabelled value from /metrics; -1 when absent.
func scrapeMetric(t *testing.T, p *proc, name string) float64 {
	t.Helper()
	resp, err := http.Get(p.admin + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return -1
}

// killOnTruncation watches the WAL directory of a running agent and kills
// it (SIGKILL) the moment a front truncation's START file appears: its
// TEMP stage (being written and fsynced) when complete is false, the
// finished START file (old segments about to be removed) when true; after
// limit it kills anyway. It returns the file suffix it saw, "" when the
// kill came at a random moment.
func killOnTruncation(t *testing.T, p *proc, walDir string, complete bool, limit time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		des, _ := os.ReadDir(walDir)
		for _, de := range des {
			if n := de.Name(); strings.HasSuffix(n, ".START") || !complete && strings.HasSuffix(n, ".START.TEMP") {
				kill9(t, p)
				return de.Name()[20:]
			}
		}
		runtime.Gosched()
	}
	kill9(t, p)
	return ""
}

// TestChaosKillDuringTruncation: 64 KiB segments roll and are truncated
// from the front every few hundred milliseconds under load; the agent is
// killed with kill -9 as soon as a truncation is seen in progress (its
// START file appears in the WAL directory), or at a random moment when
// none shows up in time. Recovery finishes or discards the interrupted
// truncation, and nothing acknowledged is lost.
func TestChaosKillDuringTruncation(t *testing.T) {
	t.Parallel()
	prof, rng := chaosProfileFromEnv(), chaosRand(t)
	dir := t.TempDir()
	out, sp := filepath.Join(dir, "out"), filepath.Join(dir, "spool")
	env := append(fileSinkEnv(sp, out), "SLUICE_SPOOL_SYNC=always", "SLUICE_SPOOL_SEGMENT_BYTES=64KiB")
	p := start(t, env...)
	var runs []chaosRun
	var truncations float64
	caught, finished, temps, tailCuts := 0, 0, 0, 0
	for c := 0; c < prof.truncKills; c++ {
		cfg := chaosLoad(p.url, fmt.Sprintf("trunc-%d", c), "trunc", 0)
		cfg.Size = 1000
		l := startLoad(cfg)
		time.Sleep(between(rng, 100*time.Millisecond, 400*time.Millisecond))
		tr := scrapeMetric(t, p, "sluice_spool_truncations_total")
		seen := killOnTruncation(t, p, filepath.Join(sp, "wal"), c%2 == 1, 2*time.Second)
		rep := l.stop(t)
		truncations += max(tr, 0)
		r, err := spool.Verify(sp)
		if err != nil {
			t.Fatalf("verify after kill: %v", err)
		}
		rec := r.Recovery
		if len(rec.Quarantined) != 0 || len(rec.CorruptRecords) != 0 {
			t.Errorf("kill %d: recovery would quarantine %v / report corrupt %v", c, rec.Quarantined, rec.CorruptRecords)
		}
		if seen != "" {
			caught++
		}
		if rec.FinishedTruncat != "" {
			finished++
		}
		if rec.RemovedTemp > 0 {
			temps++
		}
		if rec.TailCutBytes > 0 {
			tailCuts++
		}
		when := "at a random moment"
		if seen != "" {
			when = "on seeing " + seen
		}
		runs = append(runs, chaosRun{rep: rep, event: fmt.Sprintf("kill -9 %s, after %.0f truncations; recovery: finish truncation %q, temp files %d, tail cut %d bytes",
			when, tr, rec.FinishedTruncat, rec.RemovedTemp, rec.TailCutBytes)})
		p = start(t, env...)
	}
	waitBacklogEmpty(t, p)
	tot := verifyRuns(t, runs, readFileSinkAll(t, out), true)
	var st struct {
		Spool spool.Stats
	}
	getJSON(t, p.admin+"/v1/stats", &st)
	stopAgent(t, p)
	t.Logf("chaos truncation: %d kill -9 with 64KiB segments (%d inside a front truncation: %d left a complete START file to finish, %d a TEMP file to discard), %.0f truncations before the kills, %d torn tails; %d acked, %d lost, %d duplicates, %d out of order; %d segments at the end",
		prof.truncKills, caught, finished, temps, truncations, tailCuts, tot.acked, tot.lost, tot.dups, tot.outOfOrder, st.Spool.Segments)
}
