package kafkacluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sluiceio/sluice/internal/freeport"
)

// Defaults for the zero values of Options.
const (
	DefaultNodes   = 1
	DefaultHeapMB  = 384
	DefaultTimeout = 120 * time.Second
)

// Options describes a cluster. The zero value of every field but Dir means
// its default.
type Options struct {
	// Dir holds each node's configuration, data and logs (node-<id>/);
	// required. Use a t.TempDir() or a directory the caller removes.
	Dir string
	// Nodes is 1 (one combined node: replication factor 1) or 3 (each node
	// broker and controller, default replication factor 3,
	// min.insync.replicas 2). Default 1.
	Nodes int
	// HeapMB is each JVM's -Xmx. Default 384.
	HeapMB int
	// Timeout bounds start-up and every restart (a liveness bound on a
	// shared 2-core machine, not a speed claim). Default 120 s.
	Timeout time.Duration
	// Security adds a SASL_SSL (SCRAM-SHA-512) and an SSL listener with
	// required client certificates, and the StandardAuthorizer with
	// ANONYMOUS (the plaintext and controller listeners) as super user.
	Security *Security
	// Properties are extra broker properties, set on every node.
	Properties map[string]string
	// Env is the Java and jars to use; the zero value means Locate().
	Env Env
}

// Security is the TLS material of the secure listeners: PEM files.
type Security struct {
	CAFile  string // CA bundle that verifies client certificates (SSL listener)
	KeyFile string // broker private key (PKCS#8) followed by its certificate chain
}

// Cluster is a running set of nodes.
type Cluster struct {
	opts  Options
	env   Env
	nodes []*Node

	// StartupTime is how long Start took from the first exec to every
	// broker registered.
	StartupTime time.Duration

	closeOnce sync.Once
}

// Start formats and starts a cluster and waits until every broker is
// registered with the controller. A freeport port is free when it is
// picked, not when a node binds it: another test may take it
// meanwhile. The node then exits at start-up; the cluster is started
// again, in fresh node directories, on other ports.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	for try := 1; ; try++ {
		c, err := start(ctx, o)
		if err == nil {
			return c, nil
		}
		if try == 3 || c == nil || !c.bindFailed() {
			return nil, err
		}
		for _, n := range c.nodes {
			if err := os.RemoveAll(n.dir); err != nil {
				return nil, err
			}
		}
	}
}

// bindFailed reports whether a node failed to bind one of its ports.
func (c *Cluster) bindFailed() bool {
	for _, n := range c.nodes {
		for _, f := range []string{"server.log", "stdout.log"} {
			if b, err := os.ReadFile(filepath.Join(n.dir, f)); err == nil && bytes.Contains(b, []byte("Address already in use")) {
				return true
			}
		}
	}
	return false
}

// start is one try of Start. On failure after the nodes were set up it
// returns the closed cluster too, for bindFailed.
func start(ctx context.Context, o Options) (*Cluster, error) {
	if o.Dir == "" {
		return nil, errors.New("kafkacluster: Options.Dir is required")
	}
	if o.Nodes == 0 {
		o.Nodes = DefaultNodes
	}
	if o.Nodes != 1 && o.Nodes != 3 {
		return nil, fmt.Errorf("kafkacluster: %d nodes: want 1 or 3", o.Nodes)
	}
	if o.HeapMB == 0 {
		o.HeapMB = DefaultHeapMB
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	env := o.Env
	if env.Home == "" {
		var err error
		if env, err = Locate(); err != nil {
			return nil, err
		}
	}
	c := &Cluster{opts: o, env: env}
	for i := 1; i <= o.Nodes; i++ {
		n := &Node{c: c, ID: i, dir: filepath.Join(o.Dir, fmt.Sprintf("node-%d", i))}
		var err error
		if n.Addr, err = pickPort(); err != nil {
			return nil, err
		}
		if n.ControllerAddr, err = freeport.Addr(); err != nil {
			return nil, err
		}
		if o.Security != nil {
			if n.SASLAddr, err = freeport.Addr(); err != nil {
				return nil, err
			}
			if n.SSLAddr, err = freeport.Addr(); err != nil {
				return nil, err
			}
		}
		c.nodes = append(c.nodes, n)
	}
	clusterID, err := c.java(ctx, "kafka.tools.StorageTool", "random-uuid")
	if err != nil {
		return nil, fmt.Errorf("kafkacluster: random-uuid: %w", err)
	}
	lines := strings.Fields(strings.TrimSpace(clusterID))
	id := lines[len(lines)-1]
	for _, n := range c.nodes {
		if err := n.writeConfig(); err != nil {
			return nil, err
		}
		// Static voters (controller.quorum.voters) for one node as for
		// three: no --standalone.
		args := []string{"kafka.tools.StorageTool", "format", "-t", id, "-c", n.configFile()}
		if out, err := c.java(ctx, args...); err != nil {
			return nil, fmt.Errorf("kafkacluster: format node %d: %w\n%s", n.ID, err, out)
		}
	}
	start := time.Now()
	for _, n := range c.nodes {
		if err := n.launch(); err != nil {
			c.Close()
			return c, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if err := c.waitBrokers(wctx, o.Nodes); err != nil {
		c.Close()
		return c, fmt.Errorf("kafkacluster: start: %w\n%s", err, c.Logs(40))
	}
	c.StartupTime = time.Since(start)
	return c, nil
}

// Nodes returns the nodes, by id (1-based: Nodes()[0] is node 1).
func (c *Cluster) Nodes() []*Node { return c.nodes }

// Node returns the node with the given id.
func (c *Cluster) Node(id int) *Node {
	if id < 1 || id > len(c.nodes) {
		return nil
	}
	return c.nodes[id-1]
}

// Bootstrap is every node's plaintext address, comma-separated.
func (c *Cluster) Bootstrap() string { return strings.Join(c.Brokers(), ",") }

// Brokers is every node's plaintext address.
func (c *Cluster) Brokers() []string {
	var bs []string
	for _, n := range c.nodes {
		bs = append(bs, n.Addr)
	}
	return bs
}

// SASLBrokers is every node's SASL_SSL address (with Security).
func (c *Cluster) SASLBrokers() []string {
	var bs []string
	for _, n := range c.nodes {
		bs = append(bs, n.SASLAddr)
	}
	return bs
}

// SSLBrokers is every node's SSL (mutual TLS) address (with Security).
func (c *Cluster) SSLBrokers() []string {
	var bs []string
	for _, n := range c.nodes {
		bs = append(bs, n.SSLAddr)
	}
	return bs
}

// Env is the Java and jars the cluster runs on.
func (c *Cluster) Env() Env { return c.env }

// Close kills every node (SIGCONT first for stopped ones). It is
// idempotent. The data stays in Options.Dir.
func (c *Cluster) Close() {
	c.closeOnce.Do(func() {
		for _, n := range c.nodes {
			_ = n.Kill()
		}
	})
}

// Logs returns the last lines of each node's server log, for failures.
func (c *Cluster) Logs(lines int) string {
	var b strings.Builder
	for _, n := range c.nodes {
		fmt.Fprintf(&b, "--- node %d (%s):\n%s\n", n.ID, n.dir, tail(filepath.Join(n.dir, "server.log"), lines))
		if s := tail(filepath.Join(n.dir, "stdout.log"), 10); s != "" {
			fmt.Fprintf(&b, "--- node %d stdout:\n%s\n", n.ID, s)
		}
	}
	return b.String()
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// errorLines returns the last n lines of the log at path that report an
// error (what made a node exit is often well above its log's end: the
// shutdown it started follows).
func errorLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, " ERROR ") || strings.Contains(l, " FATAL ") || strings.Contains(l, "Exception") {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.Join(out, "\n")
}

// java runs a main class on the Kafka classpath and returns its output.
func (c *Cluster) java(ctx context.Context, args ...string) (string, error) {
	return c.env.run(ctx, nil, c.env.Classpath(), args...)
}

func (e Env) run(ctx context.Context, stdin []byte, cp string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	full := append([]string{"-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Dlog4j2.configurationFile=" + quietLog4j(e.Home), "-cp", cp}, args...)
	cmd := exec.CommandContext(ctx, e.Java, full...)
	if stdin != nil {
		cmd.Stdin = strings.NewReader(string(stdin))
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("java %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// quietLog4j writes (once) a log4j 2 configuration that logs warnings to
// stderr, for the command-line tools.
func quietLog4j(home string) string {
	p := filepath.Join(home, "log4j2-tools.properties")
	if _, err := os.Stat(p); err != nil {
		_ = os.WriteFile(p, []byte("status = warn\nappender.e.type = Console\nappender.e.name = E\nappender.e.target = SYSTEM_ERR\n"+
			"appender.e.layout.type = PatternLayout\nappender.e.layout.pattern = %p %m (%c)%n\n"+
			"rootLogger.level = WARN\nrootLogger.appenderRef.e.ref = E\n"), 0o644)
	}
	return p
}

// pickPort picks the nodes' ports (a test replaces it to hand out a taken
// one).
var pickPort = freeport.Addr

func execCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}
