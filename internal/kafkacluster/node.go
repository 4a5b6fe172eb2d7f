package kafkacluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sluiceio/sluice/internal/testserver/sigstop"
)

// ErrNotRunning is returned for an operation that needs a running node.
var ErrNotRunning = errors.New("kafkacluster: node not running")

// Node is one broker+controller JVM.
type Node struct {
	c   *Cluster
	dir string

	ID             int
	Addr           string // PLAINTEXT listener, 127.0.0.1:port
	ControllerAddr string // CONTROLLER listener
	SASLAddr       string // SASL_SSL listener (Options.Security)
	SSLAddr        string // SSL listener with required client certificates (Options.Security)

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool
}

func (n *Node) configFile() string { return filepath.Join(n.dir, "server.properties") }

func (n *Node) writeConfig() error {
	o := n.c.opts
	rf, isr := o.Nodes, min(2, o.Nodes)
	var voters []string
	for _, m := range n.c.nodes {
		voters = append(voters, fmt.Sprintf("%d@%s", m.ID, m.ControllerAddr))
	}
	listeners := []string{"PLAINTEXT://" + n.Addr, "CONTROLLER://" + n.ControllerAddr}
	advertised := []string{"PLAINTEXT://" + n.Addr}
	p := map[string]string{
		"process.roles":                                    "broker,controller",
		"node.id":                                          strconv.Itoa(n.ID),
		"controller.quorum.voters":                         strings.Join(voters, ","),
		"controller.listener.names":                        "CONTROLLER",
		"inter.broker.listener.name":                       "PLAINTEXT",
		"listener.security.protocol.map":                   "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL",
		"log.dirs":                                         filepath.Join(n.dir, "data"),
		"num.partitions":                                   "1",
		"default.replication.factor":                       strconv.Itoa(rf),
		"min.insync.replicas":                              strconv.Itoa(isr),
		"offsets.topic.replication.factor":                 strconv.Itoa(rf),
		"offsets.topic.num.partitions":                     "3",
		"transaction.state.log.replication.factor":         strconv.Itoa(rf),
		"transaction.state.log.min.isr":                    strconv.Itoa(isr),
		"transaction.state.log.num.partitions":             "3",
		"share.coordinator.state.topic.replication.factor": strconv.Itoa(rf),
		"share.coordinator.state.topic.min.isr":            strconv.Itoa(isr),
		"group.initial.rebalance.delay.ms":                 "0",
		"auto.create.topics.enable":                        "false",
		"unclean.leader.election.enable":                   "false",
		"num.network.threads":                              "2",
		"num.io.threads":                                   "2",
		"num.replica.fetchers":                             "1",
		"background.threads":                               "2",
		"log.cleaner.threads":                              "1",
		// Fence a dead broker and move its leaderships within seconds.
		"broker.session.timeout.ms":    "3000",
		"broker.heartbeat.interval.ms": "500",
		"replica.lag.time.max.ms":      "5000",
	}
	if s := o.Security; s != nil {
		listeners = append(listeners, "SASL_SSL://"+n.SASLAddr, "SSL://"+n.SSLAddr)
		advertised = append(advertised, "SASL_SSL://"+n.SASLAddr, "SSL://"+n.SSLAddr)
		maps.Copy(p, map[string]string{
			"sasl.enabled.mechanisms":                               "SCRAM-SHA-512",
			"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
			"ssl.keystore.type":                                     "PEM",
			"ssl.keystore.location":                                 s.KeyFile,
			"ssl.truststore.type":                                   "PEM",
			"ssl.truststore.location":                               s.CAFile,
			"listener.name.ssl.ssl.client.auth":                     "required",
			"authorizer.class.name":                                 "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
			"super.users":                                           "User:ANONYMOUS",
			"allow.everyone.if.no.acl.found":                        "false",
			"ssl.endpoint.identification.algorithm":                 "",
		})
	}
	p["listeners"] = strings.Join(listeners, ",")
	p["advertised.listeners"] = strings.Join(advertised, ",")
	maps.Copy(p, o.Properties)
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(p)) {
		fmt.Fprintf(&b, "%s=%s\n", k, p[k])
	}
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return err
	}
	log4j := "status = warn\nappender.f.type = File\nappender.f.name = F\nappender.f.fileName = " +
		filepath.Join(n.dir, "server.log") + "\nappender.f.layout.type = PatternLayout\n" +
		"appender.f.layout.pattern = [%d] %p %m (%c)%n\nrootLogger.level = INFO\nrootLogger.appenderRef.f.ref = F\n" +
		"logger.state.name = state.change.logger\nlogger.state.level = WARN\n"
	if err := os.WriteFile(filepath.Join(n.dir, "log4j2.properties"), []byte(log4j), 0o644); err != nil {
		return err
	}
	return os.WriteFile(n.configFile(), []byte(b.String()), 0o644)
}

// launch starts the node's JVM.
func (n *Node) launch() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("kafkacluster: node %d already running", n.ID)
	}
	out, err := os.OpenFile(filepath.Join(n.dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	e := n.c.env
	cmd := exec.Command(e.Java,
		"-Xms64m", fmt.Sprintf("-Xmx%dm", n.c.opts.HeapMB), "-XX:+UseSerialGC",
		"-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile="+filepath.Join(n.dir, "log4j2.properties"),
		"-cp", e.Classpath(), "kafka.Kafka", n.configFile())
	cmd.Stdout, cmd.Stderr = out, out
	// The JVM dies with the test binary, whatever kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("kafkacluster: start node %d: %w", n.ID, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(exited)
	}()
	n.cmd, n.exited, n.stopped = cmd, exited, false
	return nil
}

// Running reports whether the node's process is alive (stopped counts).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// Pid is the JVM's process id, 0 when not running.
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// Kill sends SIGKILL (kill -9) and waits for the process to be gone. A
// node that is not running is left alone.
func (n *Node) Kill() error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.cmd, n.stopped = nil, false
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Kill()
	select {
	case <-exited:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("kafkacluster: node %d did not die", n.ID)
	}
}

// Stop sends SIGSTOP: the JVM hangs with its sockets open (a hung broker).
// It returns once every thread of the JVM is stopped.
func (n *Node) Stop() error {
	if err := n.signal(syscall.SIGSTOP, true); err != nil {
		return err
	}
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd == nil {
		return ErrNotRunning
	}
	return sigstop.Wait(cmd.Process.Pid, 10*time.Second)
}

// Cont sends SIGCONT to a stopped node.
func (n *Node) Cont() error { return n.signal(syscall.SIGCONT, false) }

func (n *Node) signal(sig syscall.Signal, stopped bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return ErrNotRunning
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return err
	}
	n.stopped = stopped
	return nil
}

// Terminate sends SIGTERM (a controlled shutdown: leaderships move first)
// and waits up to timeout for the process to exit, then kills it.
func (n *Node) Terminate(timeout time.Duration) error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		n.mu.Lock()
		n.cmd = nil
		n.mu.Unlock()
		return nil
	case <-time.After(timeout):
		return n.Kill()
	}
}

// Start starts a node that is not running (after Kill or Terminate) with
// its data and ports, and waits until it is registered again.
func (n *Node) Start(ctx context.Context) error {
	if err := n.launch(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, n.c.opts.Timeout)
	defer cancel()
	if err := n.c.waitRegistered(ctx, n.ID); err != nil {
		return fmt.Errorf("kafkacluster: restart node %d: %w\nits errors:\n%s\nstdout:\n%s\nits log's end:\n%s", n.ID, err,
			errorLines(filepath.Join(n.dir, "server.log"), 20), tail(filepath.Join(n.dir, "stdout.log"), 10), tail(filepath.Join(n.dir, "server.log"), 30))
	}
	return nil
}

// Restart kills the node (kill -9) and starts it again.
func (n *Node) Restart(ctx context.Context) error {
	if err := n.Kill(); err != nil {
		return err
	}
	return n.Start(ctx)
}

// StartupTime measures nothing by itself; see Cluster.StartupTime.

// waitBrokers waits until n brokers are registered and unfenced.
func (c *Cluster) waitBrokers(ctx context.Context, n int) error {
	var last error
	for {
		ids, err := c.brokerIDs(ctx)
		if err == nil && len(ids) >= n {
			return nil
		}
		if err != nil {
			last = err
		} else {
			last = fmt.Errorf("%d of %d brokers registered", len(ids), n)
		}
		for _, nd := range c.nodes {
			nd.mu.Lock()
			cmd, exited := nd.cmd, nd.exited
			nd.mu.Unlock()
			if cmd != nil {
				select {
				case <-exited:
					return fmt.Errorf("node %d exited", nd.ID)
				default:
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitRegistered waits until node id is a registered broker again as seen
// by itself, i.e. it answers metadata and lists itself.
func (c *Cluster) waitRegistered(ctx context.Context, id int) error {
	n := c.Node(id)
	var last error
	for {
		ids, err := c.brokerIDsFrom(ctx, n.Addr)
		if err == nil && slices.Contains(ids, id) {
			return nil
		}
		last = err
		if !n.Running() {
			return fmt.Errorf("node %d exited", id)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
