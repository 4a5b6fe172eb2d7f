package kafkacluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// ErrNoLeader is returned by Leader when the partition has none.
var ErrNoLeader = errors.New("kafkacluster: partition has no leader")

// live returns the plaintext addresses of running, not stopped nodes.
func (c *Cluster) live() []string {
	var as []string
	for _, n := range c.nodes {
		n.mu.Lock()
		ok := n.cmd != nil && !n.stopped
		n.mu.Unlock()
		if ok && n.Running() {
			as = append(as, n.Addr)
		}
	}
	return as
}

// Partitions returns the partitions of topics as a live node sees them
// now (no cache).
func (c *Cluster) Partitions(ctx context.Context, topics ...string) ([]kafkago.Partition, error) {
	var ps []kafkago.Partition
	err := c.eachConn(ctx, func(conn *kafkago.Conn) error {
		var err error
		ps, err = conn.ReadPartitions(topics...)
		return err
	})
	return ps, err
}

// eachConn runs f on a fresh connection to each live node in turn until
// one succeeds.
func (c *Cluster) eachConn(ctx context.Context, f func(*kafkago.Conn) error) error {
	err := ErrNotRunning
	for _, a := range c.live() {
		err = withConn(ctx, a, f)
		if err == nil || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func withConn(ctx context.Context, addr string, f func(*kafkago.Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d := kafkago.Dialer{Timeout: 5 * time.Second, ClientID: "kafkacluster"}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	_ = conn.SetDeadline(dl)
	return f(conn)
}

func (c *Cluster) brokerIDs(ctx context.Context) ([]int, error) {
	var ids []int
	err := c.eachConn(ctx, func(conn *kafkago.Conn) error {
		bs, err := conn.Brokers()
		for _, b := range bs {
			ids = append(ids, b.ID)
		}
		return err
	})
	return ids, err
}

func (c *Cluster) brokerIDsFrom(ctx context.Context, addr string) ([]int, error) {
	var ids []int
	err := withConn(ctx, addr, func(conn *kafkago.Conn) error {
		bs, err := conn.Brokers()
		for _, b := range bs {
			ids = append(ids, b.ID)
		}
		return err
	})
	return ids, err
}

// CreateTopic creates a topic (replication factor rf; 0 = the cluster's
// size) with configs, and waits until every partition has a leader and a
// full in-sync replica set.
func (c *Cluster) CreateTopic(ctx context.Context, name string, partitions, rf int, configs map[string]string) error {
	if rf == 0 {
		rf = len(c.nodes)
	}
	tc := kafkago.TopicConfig{Topic: name, NumPartitions: partitions, ReplicationFactor: rf}
	for _, k := range slices.Sorted(maps.Keys(configs)) {
		tc.ConfigEntries = append(tc.ConfigEntries, kafkago.ConfigEntry{ConfigName: k, ConfigValue: configs[k]})
	}
	// Until the brokers have all registered, creation can fail with a
	// retriable error: retry within the cluster's timeout.
	wctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	for {
		err := c.eachConn(wctx, func(conn *kafkago.Conn) error { return conn.CreateTopics(tc) })
		if err == nil || errors.Is(err, kafkago.TopicAlreadyExists) {
			break
		}
		var kerr kafkago.Error
		if errors.As(err, &kerr) && !kerr.Temporary() && kerr != kafkago.BrokerNotAvailable && kerr != kafkago.InvalidReplicationFactor {
			return fmt.Errorf("kafkacluster: create topic %s: %w", name, err)
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("kafkacluster: create topic %s: %w", name, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
	return c.WaitInSync(ctx, name)
}

// WaitInSync waits until every partition of the topics has a leader and
// all its replicas in sync (after a restart: caught up).
func (c *Cluster) WaitInSync(ctx context.Context, topics ...string) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	var last string
	for {
		ps, err := c.Partitions(ctx, topics...)
		ok := err == nil && len(ps) > 0
		if err != nil {
			last = err.Error()
		}
		for _, p := range ps {
			if p.Leader.ID < 0 || p.Leader.Host == "" || len(p.Isr) < len(p.Replicas) {
				ok, last = false, fmt.Sprintf("%s[%d]: leader %d, isr %d of %d", p.Topic, p.ID, p.Leader.ID, len(p.Isr), len(p.Replicas))
			}
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafkacluster: %v in sync: %w (last: %s)", topics, ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Leader returns the node id leading topic's partition.
func (c *Cluster) Leader(ctx context.Context, topic string, partition int) (int, error) {
	ps, err := c.Partitions(ctx, topic)
	if err != nil {
		return 0, err
	}
	for _, p := range ps {
		if p.ID == partition {
			if p.Leader.ID < 0 || p.Leader.Host == "" {
				return 0, ErrNoLeader
			}
			return p.Leader.ID, nil
		}
	}
	return 0, fmt.Errorf("kafkacluster: %s[%d] not found", topic, partition)
}

var leaderIDRE = regexp.MustCompile(`(?m)^LeaderId:\s*(\d+)`)

// ActiveController returns the node id of the active KRaft controller
// (the quorum leader), asked of a live node's controller listener with
// kafka-metadata-quorum (MetadataQuorumCommand).
func (c *Cluster) ActiveController(ctx context.Context) (int, error) {
	var last error
	for _, n := range c.nodes {
		if !n.Running() {
			continue
		}
		out, err := c.java(ctx, "org.apache.kafka.tools.MetadataQuorumCommand",
			"--bootstrap-controller", n.ControllerAddr, "describe", "--status")
		if err != nil {
			last = err
			continue
		}
		m := leaderIDRE.FindStringSubmatch(out)
		if m == nil {
			last = fmt.Errorf("no LeaderId in %q", out)
			continue
		}
		return strconv.Atoi(m[1])
	}
	return 0, fmt.Errorf("kafkacluster: active controller: %w", last)
}
