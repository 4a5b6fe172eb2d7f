package kafkacluster

import (
	"context"
	"testing"
	"time"
)

// TestThreeNodes starts a three-node cluster, creates a topic, kills the
// leader of its partition and the active controller, and restarts them.
func TestThreeNodes(t *testing.T) {
	env := Require(t)
	ctx := context.Background()
	c, err := Start(ctx, Options{Nodes: 3, Dir: t.TempDir(), Env: env})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	t.Logf("three nodes up in %v", c.StartupTime.Round(time.Millisecond))
	if err := c.CreateTopic(ctx, "t", 3, 3, map[string]string{"max.message.bytes": "10000"}); err != nil {
		t.Fatal(err)
	}
	leader, err := c.Leader(ctx, "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := c.ActiveController(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("leader of t[0]: %d, active controller: %d", leader, ctrl)
	if err := c.Node(leader).Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		l, err := c.Leader(ctx, "t", 0)
		if err == nil && l != leader {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new leader after killing %d: %d %v", leader, l, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := c.Node(leader).Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitInSync(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	recs, err := env.JavaPartitions(ctx, c.Bootstrap(), "t", []string{"a", "b", "c"})
	if err != nil || len(recs) != 3 {
		t.Fatalf("java partitions: %v %v", recs, err)
	}
	got, err := env.ConsumeJava(ctx, c.Bootstrap(), "t")
	if err != nil || len(got) != 3 {
		t.Fatalf("java consume: %v %v", got, err)
	}
}
