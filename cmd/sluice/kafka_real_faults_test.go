package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/kafkacluster"
	"github.com/sluiceio/sluice/internal/loadgen"
)

// TestKafkaRealFaults runs the fault scenarios against the three-node
// cluster while pushes keep coming (open loop), then checks that every
// acknowledged message is in Kafka (0 lost), in push order per key, and
// reports duplicates and the slowest push. With -v it prints one table row
// per scenario: pushed, acknowledged, delivered, lost, duplicates, max push
// latency. SLUICE_KAFKA_LONG=1: higher rate, longer faults, every scenario
// three times and with a sluice kill -9 in each.
func TestKafkaRealFaults(t *testing.T) {
	c := realCluster(t)
	rate, reps := 1500.0, 1
	if realLong() {
		rate, reps = 4000, 3
	}
	type scenario struct {
		name      string
		killAgent bool // sluice kill -9 during the fault, restarted on the same spool
		fault     func(t *testing.T, f *faultRun)
	}
	scenarios := []scenario{
		{"leader-kill", false, faultLeaderKill},
		{"rolling-restart", false, faultRollingRestart},
		{"controller-kill", false, faultControllerKill},
		{"two-of-three-down", false, faultTwoDown},
		{"leader-sigstop", false, faultLeaderStop},
		{"leader-kill+sluice-kill", true, faultLeaderKill},
	}
	if realLong() {
		for _, s := range scenarios[1:5] { // leader-kill+sluice-kill is in the list already
			scenarios = append(scenarios, scenario{s.name + "+sluice-kill", true, s.fault})
		}
	}
	var rows []string
	for _, s := range scenarios {
		for rep := 0; rep < reps; rep++ {
			name := s.name
			if reps > 1 {
				name = fmt.Sprintf("%s#%d", s.name, rep+1)
			}
			t.Run(name, func(t *testing.T) {
				row := runFault(t, c, name, rate, s.killAgent, s.fault)
				rows = append(rows, row)
			})
		}
	}
	summary := "| fault | pushed | acknowledged | delivered | lost | duplicates | max push latency | sink retry reasons |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n" + strings.Join(rows, "\n")
	t.Logf("real Kafka faults (%s profile, %.0f msgs/s offered):\n%s", map[bool]string{false: "short", true: "long"}[realLong()], rate, summary)
	if os.Getenv("SLUICE_KAFKA_FAULTS_OUT") != "" {
		os.WriteFile(os.Getenv("SLUICE_KAFKA_FAULTS_OUT"), []byte(summary+"\n"), 0o644)
	}
}

// faultRun is one scenario in progress.
type faultRun struct {
	c      *kafkacluster.Cluster
	topic  string
	p      *proc
	env    []string
	rate   float64
	kill   bool
	loads  []*loadRun
	events []string
}

const faultWriteTimeout = 2 * time.Second

func runFault(t *testing.T, c *kafkacluster.Cluster, name string, rate float64, killAgent bool, fault func(*testing.T, *faultRun)) string {
	ctx := context.Background()
	topic := "fault-" + strings.NewReplacer("+", "-", "#", "-").Replace(name)
	createTopic(t, c, topic, 6, nil)
	healthy(t, c, topic)
	f := &faultRun{c: c, topic: topic, rate: rate, kill: killAgent, env: []string{
		"SLUICE_SPOOL_DIR=" + t.TempDir(), "SLUICE_SINKS=kafka", "SLUICE_KAFKA_BROKERS=" + c.Bootstrap(),
		"SLUICE_KAFKA_WRITE_TIMEOUT=" + faultWriteTimeout.String(), "SLUICE_KAFKA_DIAL_TIMEOUT=1s",
		"SLUICE_KAFKA_RETRY_MAX=500ms",
	}}
	f.p = start(t, f.env...)
	f.load()
	time.Sleep(1500 * time.Millisecond)

	began := time.Now()
	fault(t, f)
	healthy(t, c, topic)
	f.event("cluster whole again after %v", time.Since(began).Round(100*time.Millisecond))
	time.Sleep(1500 * time.Millisecond)
	var reps []loadgen.Report
	for _, l := range f.loads {
		reps = append(reps, l.stop(t))
	}
	waitBacklogEmptyWithin(t, f.p, 3*time.Minute)

	// Right after a fault the first metadata can still name an old
	// leader (NOT_LEADER_OR_FOLLOWER): read again within a bound.
	var delivered []loadgen.Delivered
	var err error
	waitFor(t, "read back from Kafka", time.Minute, func() bool {
		delivered, err = loadgen.ReadKafka(ctx, c.Brokers(), []string{topic})
		return err == nil
	})
	byRun := map[string][]loadgen.Delivered{}
	for _, d := range delivered {
		byRun[d.Run] = append(byRun[d.Run], d)
	}
	var pushed, acked, unique, lost, dups int64
	var maxLat, p99 time.Duration
	for i, rep := range reps {
		v := loadgen.Verify(rep.AckedIDs, byRun[rep.RunID])
		pushed += rep.Messages
		acked += int64(v.Acked)
		unique += int64(v.Unique)
		lost += int64(v.Lost)
		dups += int64(v.Duplicates)
		maxLat = max(maxLat, rep.Latency.Max)
		p99 = max(p99, rep.Latency.P99)
		if v.Lost != 0 {
			t.Errorf("run %d: %d acknowledged messages lost, e.g. %v", i, v.Lost, v.LostIDs)
		}
		if v.OutOfOrder != 0 {
			t.Errorf("run %d: %d messages out of order per key, e.g. %v", i, v.OutOfOrder, v.OutOfOrderIDs)
		}
		if len(rep.Errors) != 0 && !killAgent {
			t.Errorf("run %d: pushes failed during the fault: %v %v", i, rep.Errors, rep.ErrorSamples)
		}
	}
	reasons := retryReasons(t, f.p)
	// The load generator's latency runs from each request's scheduled
	// send time (open loop), so it also counts the generator falling
	// behind when the JVMs take the CPU; the agent's own histogram says
	// how many pushes took it over 1 s (the last agent process only).
	slow := metricValue(t, f.p, "sluice_request_duration_seconds_count")
	le1 := metricValue(t, f.p, `sluice_request_duration_seconds_bucket{le="1"}`)
	var total, under float64
	fmt.Sscan(slow, &total)
	fmt.Sscan(le1, &under)
	reasons += fmt.Sprintf("; agent: %.0f of %.0f push requests over 1 s", total-under, total)
	t.Logf("%s: %s", name, strings.Join(f.events, "; "))
	t.Logf("%s: pushed %d, acknowledged %d, delivered %d, lost %d, duplicates %d, push latency p99 %v max %v, retries %s",
		name, pushed, acked, unique, lost, dups, p99.Round(time.Millisecond), maxLat.Round(time.Millisecond), reasons)
	stopAgent(t, f.p)
	return fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %v (p99 %v) | %s |", name, pushed, acked, unique, lost, dups,
		maxLat.Round(time.Millisecond), p99.Round(time.Millisecond), reasons)
}

// load starts an open-loop load run against the current agent.
func (f *faultRun) load() {
	f.loads = append(f.loads, startLoad(loadgen.Config{
		URL: f.p.url, Mode: loadgen.ModeNDJSON, Batch: 10, Size: 200, Connections: 4, Keys: 16,
		Topic: f.topic, Verify: true, Rate: f.rate, Duration: 10 * time.Minute, Timeout: 5 * time.Second,
	}))
}

func (f *faultRun) event(format string, args ...any) {
	f.events = append(f.events, fmt.Sprintf(format, args...))
}

// agentKill, in scenarios that ask for it, stops the load, kills sluice
// with -9 mid-fault and starts it again on the same spool with new load.
func (f *faultRun) agentKill(t *testing.T) {
	if !f.kill {
		return
	}
	f.loads[len(f.loads)-1].cancel()
	<-f.loads[len(f.loads)-1].done
	kill9(t, f.p)
	f.p = start(t, f.env...)
	f.event("sluice kill -9 and restart")
	f.load()
}

func (f *faultRun) leader(t *testing.T) int {
	t.Helper()
	var id int
	waitFor(t, "partition 0 has a leader", 60*time.Second, func() bool {
		var err error
		id, err = f.c.Leader(context.Background(), f.topic, 0)
		return err == nil
	})
	return id
}

// waitNewLeader waits until partition 0 is led by another node than old.
func (f *faultRun) waitNewLeader(t *testing.T, old int) {
	t.Helper()
	waitFor(t, "partition 0 led by another node", 60*time.Second, func() bool {
		id, err := f.c.Leader(context.Background(), f.topic, 0)
		return err == nil && id != old
	})
}

func faultLeaderKill(t *testing.T, f *faultRun) {
	id := f.leader(t)
	if err := f.c.Node(id).Kill(); err != nil {
		t.Fatal(err)
	}
	f.event("kill -9 node %d (leader of partition 0)", id)
	f.waitNewLeader(t, id)
	f.agentKill(t)
	time.Sleep(2 * time.Second)
	if err := f.c.Node(id).Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func faultRollingRestart(t *testing.T, f *faultRun) {
	for _, n := range f.c.Nodes() {
		if err := n.Terminate(60 * time.Second); err != nil {
			t.Fatal(err)
		}
		f.event("node %d restarted", n.ID)
		if n.ID == 2 {
			f.agentKill(t)
		}
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := f.c.WaitInSync(context.Background(), f.topic); err != nil {
			t.Fatal(err)
		}
	}
}

func faultControllerKill(t *testing.T, f *faultRun) {
	id, err := f.c.ActiveController(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.c.Node(id).Kill(); err != nil {
		t.Fatal(err)
	}
	f.event("kill -9 node %d (active controller)", id)
	waitFor(t, "a new active controller", 60*time.Second, func() bool {
		nid, err := f.c.ActiveController(context.Background())
		return err == nil && nid != id
	})
	f.agentKill(t)
	time.Sleep(2 * time.Second)
	if err := f.c.Node(id).Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// faultTwoDown stops two of the three nodes. With every node a controller
// too, that also loses the KRaft quorum: the survivor keeps its partitions'
// in-sync sets (no controller can shrink them), so produce requests with
// acks=all time out or find no leader. Pushes must still be answered 202,
// the backlog must grow with sluice_sink_failing at 1, and it must drain
// when the nodes return.
func faultTwoDown(t *testing.T, f *faultRun) {
	down := []int{1, 2}
	for _, id := range down {
		if err := f.c.Node(id).Kill(); err != nil {
			t.Fatal(err)
		}
	}
	f.event("kill -9 nodes 1 and 2")
	waitFor(t, "sluice_sink_failing 1", 60*time.Second, func() bool {
		return metricValue(t, f.p, `sluice_sink_failing{sink="kafka"}`) == "1"
	})
	b1 := backlogMessages(t, f.p)
	time.Sleep(3 * time.Second)
	b2 := backlogMessages(t, f.p)
	if b2 <= b1 {
		t.Errorf("backlog did not grow while two nodes were down: %d then %d", b1, b2)
	}
	f.event("sluice_sink_failing 1, backlog %d → %d messages", b1, b2)
	f.agentKill(t)
	for _, id := range down {
		if err := f.c.Node(id).Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "sluice_sink_failing 0", 2*time.Minute, func() bool {
		return metricValue(t, f.p, `sluice_sink_failing{sink="kafka"}`) == "0"
	})
}

// faultLeaderStop hangs the leader of partition 0 (SIGSTOP) for longer
// than the sink's write timeout, then lets it go on.
func faultLeaderStop(t *testing.T, f *faultRun) {
	id := f.leader(t)
	if err := f.c.Node(id).Stop(); err != nil {
		t.Fatal(err)
	}
	f.event("SIGSTOP node %d (leader of partition 0) for %v", id, 3*faultWriteTimeout)
	f.agentKill(t)
	time.Sleep(3 * faultWriteTimeout)
	if err := f.c.Node(id).Cont(); err != nil {
		t.Fatal(err)
	}
}

func backlogMessages(t *testing.T, p *proc) uint64 {
	var st struct {
		Sinks []struct {
			BacklogMessages uint64 `json:"backlog_messages"`
		}
	}
	getJSON(t, p.admin+"/v1/stats", &st)
	if len(st.Sinks) == 0 {
		return 0
	}
	return st.Sinks[0].BacklogMessages
}

// retryReasons summarises sluice_sink_retries_total by reason.
func retryReasons(t *testing.T, p *proc) string {
	var parts []string
	for _, r := range []string{"network", "timeout", "leader", "replicas", "unknown_topic", "broker", "canceled", "other", "auth", "tls"} {
		if v := metricSum(t, p, "sluice_sink_retries_total", `reason="`+r+`"`); v > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f", r, v))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// waitBacklogEmptyWithin is waitBacklogEmpty with a longer liveness bound.
func waitBacklogEmptyWithin(t *testing.T, p *proc, bound time.Duration) {
	t.Helper()
	waitFor(t, "backlog drained", bound, func() bool { return backlogMessages(t, p) == 0 })
}

// TestKafkaRealShutdownHungCluster: every broker hangs (SIGSTOP) with
// messages in the backlog, and sluice gets SIGTERM: the drain ends at
// SLUICE_DRAIN_TIMEOUT although kafka-go's requests are stuck on the hung
// connections, sluice exits 0, and after the brokers continue a new sluice
// on the same spool delivers every message.
func TestKafkaRealShutdownHungCluster(t *testing.T) {
	c := realCluster(t)
	createTopic(t, c, "hung", 3, nil)
	healthy(t, c, "hung")
	env := []string{"SLUICE_SPOOL_DIR=" + t.TempDir(), "SLUICE_SINKS=kafka", "SLUICE_KAFKA_BROKERS=" + c.Bootstrap(),
		"SLUICE_KAFKA_WRITE_TIMEOUT=10s", "SLUICE_DRAIN_TIMEOUT=3s"}
	p := start(t, env...)
	for _, n := range c.Nodes() {
		if err := n.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { healthy(t, c) })
	var ids []string
	for i := 0; i < 50; i++ {
		code, id, err := push(p.url, "hung", []byte(fmt.Sprintf("h-%d", i)), "")
		if err != nil || code != 202 {
			t.Fatalf("push %d: %d %v", i, code, err)
		}
		ids = append(ids, id...)
	}
	time.Sleep(time.Second) // a produce request is in flight on a hung connection
	began := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t); err != nil {
		t.Fatalf("exit after SIGTERM with a hung cluster: %v\n%s", err, p.logs())
	}
	took := time.Since(began)
	for _, n := range c.Nodes() {
		if err := n.Cont(); err != nil {
			t.Fatal(err)
		}
	}
	healthy(t, c, "hung")
	q := start(t, env...)
	for _, id := range ids {
		waitFor(t, "delivered after restart", time.Minute, func() bool { return getStatus(t, q, id).Status == "delivered" })
	}
	t.Logf("SIGTERM with every broker hung: exited after %v (drain timeout 3s, write timeout 10s); all 50 delivered after", took.Round(time.Millisecond))
}
