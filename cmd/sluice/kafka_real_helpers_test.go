package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/kafkacluster"
)

// The kafka_real_* tests run sluice against real Apache Kafka (see
// internal/kafkacluster): one three-node KRaft cluster per test binary run,
// started by the first test that needs it and shared by the others, each on
// its own topics. SLUICE_KAFKA_LONG=1 runs the long fault profile.

var realKafka struct {
	once sync.Once
	c    *kafkacluster.Cluster
	dir  string
	err  error
}

// realCluster returns the shared three-node cluster, starting it on first
// use. Without Java or the jars the test skips (fails in CI).
func realCluster(t testing.TB) *kafkacluster.Cluster {
	t.Helper()
	env := kafkacluster.Require(t)
	realKafka.once.Do(func() {
		realKafka.dir, realKafka.err = os.MkdirTemp("", "sluice-real-kafka")
		if realKafka.err != nil {
			return
		}
		realKafka.c, realKafka.err = kafkacluster.Start(context.Background(), kafkacluster.Options{
			Nodes: 3, Dir: realKafka.dir, Env: env, HeapMB: 512,
		})
		if realKafka.err == nil {
			fmt.Fprintf(os.Stderr, "real Kafka %s: 3 nodes started in %v\n", kafkacluster.Version, realKafka.c.StartupTime.Round(time.Millisecond))
		}
	})
	if realKafka.err != nil {
		t.Fatalf("real Kafka cluster: %v", realKafka.err)
	}
	return realKafka.c
}

// closeRealKafka stops the shared cluster (TestMain, after the tests).
func closeRealKafka() {
	if realKafka.c != nil {
		realKafka.c.Close()
	}
	if realKafka.dir != "" {
		os.RemoveAll(realKafka.dir)
	}
}

// realLong reports whether the long fault profile was asked for.
func realLong() bool { return os.Getenv("SLUICE_KAFKA_LONG") == "1" }

// healthy restarts every node that is not running and waits until the
// topics are fully in sync, so that each scenario starts from a whole
// cluster.
func healthy(t testing.TB, c *kafkacluster.Cluster, topics ...string) {
	t.Helper()
	ctx := context.Background()
	for _, n := range c.Nodes() {
		_ = n.Cont()
		if !n.Running() {
			if err := n.Start(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(topics) > 0 {
		if err := c.WaitInSync(ctx, topics...); err != nil {
			t.Fatalf("%v\n%s", err, c.Logs(30))
		}
	}
}

// createTopic creates a topic on the cluster or fails the test.
func createTopic(t testing.TB, c *kafkacluster.Cluster, name string, partitions int, configs map[string]string) {
	t.Helper()
	if err := c.CreateTopic(context.Background(), name, partitions, 0, configs); err != nil {
		t.Fatalf("%v\n%s", err, c.Logs(30))
	}
}

// metricValue returns the value of one series of the agent's /metrics, or
// "" when it is absent.
func metricValue(t testing.TB, p *proc, series string) string {
	t.Helper()
	resp, err := http.Get(p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// metricSum sums every series of a metric whose labels contain the given
// fragment (e.g. `sink="kafka"`).
func metricSum(t testing.TB, p *proc, name, labels string) float64 {
	t.Helper()
	resp, err := http.Get(p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name+"{") && strings.Contains(line, labels) {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			sum += v
		}
	}
	return sum
}

// waitFor polls cond every 100 ms until it holds or the liveness bound
// passes.
func waitFor(t testing.TB, what string, bound time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, bound)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// messageStatus is GET /v1/messages/{id}.
type messageStatus struct {
	Status string
	Sinks  map[string]struct {
		Status    string
		Partition *int32
		Offset    *int64
		Reason    string
		Error     string
	}
}

func getStatus(t *testing.T, p *proc, id string) messageStatus {
	t.Helper()
	var st messageStatus
	getJSON(t, p.url+"/v1/messages/"+id, &st)
	return st
}
