package kafkacluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/freeport"
)

// TestOneNode starts one combined node, creates a topic, writes and reads
// it with the Java client, finds the leader and the active controller, and
// restarts the node after kill -9 with its data. (The three-node cluster
// is exercised by the kafka_real_* tests in cmd/sluice, which start one
// per run: two at once would be six JVMs on a 2-core CI machine.) The
// first port picked for the node is taken, as when another test's
// connection takes it before the node binds it: Start starts the node
// again on another port.
func TestOneNode(t *testing.T) {
	env := Require(t)
	ctx := context.Background()
	taken := freeport.Take(t)
	pickPort = taken.Addr
	defer func() { pickPort = freeport.Addr }()
	c, err := Start(ctx, Options{Nodes: 1, Dir: t.TempDir(), Env: env, HeapMB: 256})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if c.Node(1).Addr == fmt.Sprintf("127.0.0.1:%d", taken.Port) || taken.Picks != 2 {
		t.Fatalf("node on %s after %d picks; port %d was taken", c.Node(1).Addr, taken.Picks, taken.Port)
	}
	t.Logf("one node up in %v", c.StartupTime.Round(time.Millisecond))
	if err := c.CreateTopic(ctx, "t", 3, 0, map[string]string{"max.message.bytes": "10000"}); err != nil {
		t.Fatal(err)
	}
	if l, err := c.Leader(ctx, "t", 2); err != nil || l != 1 {
		t.Fatalf("leader of t[2]: %d %v", l, err)
	}
	if id, err := c.ActiveController(ctx); err != nil || id != 1 {
		t.Fatalf("active controller: %d %v", id, err)
	}
	parts, err := env.JavaPartitions(ctx, c.Bootstrap(), "t", []string{"a", "b", "c"})
	if err != nil || len(parts) != 3 {
		t.Fatalf("java partitions: %v %v", parts, err)
	}
	if err := c.Node(1).Kill(); err != nil {
		t.Fatal(err)
	}
	if c.Node(1).Running() {
		t.Fatal("node running after Kill")
	}
	if err := c.Node(1).Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitInSync(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	got, err := env.ConsumeJava(ctx, c.Bootstrap(), "t")
	if err != nil || len(got) != 3 {
		t.Fatalf("java consume after restart: %v %v", got, err)
	}
	for _, r := range got {
		if parts[string(r.Key)] != r.Partition || string(r.Value) != "x" {
			t.Fatalf("record %+v, producer said partition %d", r, parts[string(r.Key)])
		}
	}
}
