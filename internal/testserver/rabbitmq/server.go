package rabbitmq

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluiceio/sluice/internal/freeport"
	"github.com/sluiceio/sluice/internal/testenv"
	"github.com/sluiceio/sluice/internal/testserver/sigstop"
)

// DefaultBinDir holds the Debian package's scripts (rabbitmq-server,
// rabbitmqctl); $SLUICE_RABBITMQ_BIN overrides it.
const DefaultBinDir = "/usr/lib/rabbitmq/bin"

// DefaultStartTimeout bounds one start of a node: a liveness bound, not a
// speed requirement (a node starts in about 5-15 s on a busy 2-core box).
const DefaultStartTimeout = 2 * time.Minute

// ErrMissing is returned by Launch when rabbitmq-server is not installed.
var ErrMissing = errors.New("testserver/rabbitmq: rabbitmq-server is not installed")

// Options configures a node. The zero value is a plain node.
type Options struct {
	// Config holds extra rabbitmq.conf lines, e.g. "max_message_size = 100000".
	Config []string
	// TLS also opens an AMQPS listener (Server.TLSPort) whose certificate,
	// for 127.0.0.1 and localhost, is signed by a CA generated for the node
	// (Server.CAFile).
	TLS bool
	// StartTimeout bounds each start. Default DefaultStartTimeout.
	StartTimeout time.Duration
}

// Server is one RabbitMQ node.
type Server struct {
	// Node is the Erlang node name, sluice-<random>@localhost.
	Node string
	// Port is the AMQP port on 127.0.0.1; TLSPort the AMQPS one (with
	// Options.TLS).
	Port, TLSPort int
	// CAFile is the PEM file of the CA that signed the node's certificate
	// (with Options.TLS).
	CAFile string
	// StartupTime is how long the last start took, from spawning the node
	// to `rabbitmqctl await_startup` returning.
	StartupTime time.Duration

	dir     string
	bin     string
	env     []string
	timeout time.Duration

	mu   sync.Mutex
	proc *process
}

// process is one run of the node.
type process struct {
	pid    int // also the process group id
	exited chan struct{}
	err    error // valid after exited is closed
}

// Start launches a node for the test and stops it and removes its
// directory when the test ends. A missing rabbitmq-server ends the test
// through testenv.Missing; a node that does not start fails it.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	s, err := Launch(o)
	if errors.Is(err, ErrMissing) {
		testenv.Missing(t, "rabbitmq-server", "apt-get install -y rabbitmq-server (scripts/deps/rabbitmq.sh)")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	t.Logf("rabbitmq node %s started in %v (amqp 127.0.0.1:%d)", s.Node, s.StartupTime.Round(time.Millisecond), s.Port)
	return s
}

// Launch starts a node; the caller calls Shutdown. For package-wide nodes
// (TestMain); tests use Start. A freeport port is free when it is picked,
// not when the node binds it: another test may take it meanwhile. The
// node then exits at start-up; it is started again on other ports.
func Launch(o Options) (*Server, error) {
	for try := 1; ; try++ {
		s, err := launch(o)
		if err == nil || try == 3 || !strings.Contains(err.Error(), "eaddrinuse") {
			return s, err
		}
	}
}

func launch(o Options) (*Server, error) {
	bin := os.Getenv("SLUICE_RABBITMQ_BIN")
	if bin == "" {
		bin = DefaultBinDir
	}
	for _, f := range []string{"rabbitmq-server", "rabbitmqctl"} {
		if _, err := os.Stat(filepath.Join(bin, f)); err != nil {
			return nil, fmt.Errorf("%w (%s: %v)", ErrMissing, f, err)
		}
	}
	if _, err := exec.LookPath("erl"); err != nil {
		return nil, fmt.Errorf("%w (erl: %v)", ErrMissing, err)
	}
	dir, err := os.MkdirTemp("", "sluice-rabbitmq-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin, timeout: o.StartTimeout}
	if s.timeout <= 0 {
		s.timeout = DefaultStartTimeout
	}
	if err := s.prepare(o); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.start(); err != nil {
		s.Shutdown()
		return nil, err
	}
	return s, nil
}

// prepare writes the node's files and environment.
func (s *Server) prepare(o Options) error {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	s.Node = "sluice-" + hex.EncodeToString(rnd[:]) + "@localhost"
	home := filepath.Join(s.dir, "home")
	for _, d := range []string{home, filepath.Join(s.dir, "mnesia"), filepath.Join(s.dir, "log")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	// The cookie authenticates rabbitmqctl to this node (and no other).
	var cookie [20]byte
	if _, err := rand.Read(cookie[:]); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(home, ".erlang.cookie"), []byte(strings.ToUpper(hex.EncodeToString(cookie[:]))), 0o400); err != nil {
		return err
	}
	ports, err := pickPorts(3)
	if err != nil {
		return err
	}
	s.Port = ports[0]
	distPort := ports[1]
	conf := []string{
		"listeners.tcp.default = 127.0.0.1:" + strconv.Itoa(s.Port),
		"log.console = false",
		"log.file.level = info",
	}
	if o.TLS {
		s.TLSPort = ports[2]
		ca, cert, key, err := writeCerts(s.dir)
		if err != nil {
			return fmt.Errorf("testserver/rabbitmq: certificates: %w", err)
		}
		s.CAFile = ca
		conf = append(conf,
			"listeners.ssl.default = 127.0.0.1:"+strconv.Itoa(s.TLSPort),
			"ssl_options.cacertfile = "+ca,
			"ssl_options.certfile = "+cert,
			"ssl_options.keyfile = "+key,
			"ssl_options.verify = verify_none",
			"ssl_options.fail_if_no_peer_cert = false",
		)
	}
	conf = append(conf, o.Config...)
	files := map[string]string{
		"rabbitmq.conf":     strings.Join(conf, "\n") + "\n",
		"enabled_plugins":   "[].\n",
		"rabbitmq-env.conf": "# empty: the node's settings come from the environment\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	loopbackOnly := "-kernel inet_dist_use_interface {127,0,0,1}"
	s.env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"LANG=C.UTF-8",
		"RABBITMQ_NODENAME=" + s.Node,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT=" + strconv.Itoa(s.Port),
		"RABBITMQ_DIST_PORT=" + strconv.Itoa(distPort),
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(s.dir, "mnesia"),
		"RABBITMQ_LOG_BASE=" + filepath.Join(s.dir, "log"),
		"RABBITMQ_CONFIG_FILE=" + filepath.Join(s.dir, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE=" + filepath.Join(s.dir, "advanced.config"), // absent on purpose
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(s.dir, "rabbitmq-env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(s.dir, "enabled_plugins"),
		"RABBITMQ_PID_FILE=" + filepath.Join(s.dir, "node.pid"),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=" + loopbackOnly,
		"RABBITMQ_CTL_ERL_ARGS=" + loopbackOnly,
	}
	return nil
}

// pickPorts picks the node's ports (a test replaces it to hand out a
// taken one).
var pickPorts = freeport.Ports

// start spawns the node and waits until it is ready.
func (s *Server) start() error {
	t0 := time.Now()
	out, err := os.OpenFile(filepath.Join(s.dir, "node.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	p, err := spawn(filepath.Join(s.bin, "rabbitmq-server"), s.env, s.dir, out)
	if err != nil {
		return fmt.Errorf("testserver/rabbitmq: start %s: %w", s.Node, err)
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if err := s.waitPort(ctx, p); err != nil {
		return fmt.Errorf("testserver/rabbitmq: node %s did not start: %w\n%s", s.Node, err, s.logTail())
	}
	if _, err := s.ctl(ctx, "await_startup", "--timeout", strconv.Itoa(int(s.timeout.Seconds()))); err != nil {
		return fmt.Errorf("testserver/rabbitmq: node %s: await_startup: %w\n%s", s.Node, err, s.logTail())
	}
	s.StartupTime = time.Since(t0)
	return nil
}

// spawn starts the node's start script in a process group of its own. The
// script runs erl as its child and stops it cleanly on SIGTERM. Pdeathsig
// sends that SIGTERM when the thread that forked dies; the goroutine that
// forks keeps its OS thread locked until the node exits, so the thread
// dies only with the test binary: a node does not outlive a test run that
// crashed or timed out before its cleanups ran.
func spawn(path string, env []string, dir string, out *os.File) (*process, error) {
	p := &process{exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd := exec.Command(path)
		cmd.Env = env
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		p.err = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// waitPort waits until the AMQP port answers an AMQP handshake.
func (s *Server) waitPort(ctx context.Context, p *process) error {
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("node exited: %v", p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err != nil {
			continue
		}
		c.Close()
		conn, err := amqp.DialConfig(s.URL(), amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
		if err == nil {
			conn.Close()
			return nil
		}
	}
}

// Dir is the node's directory (database, logs, configuration).
func (s *Server) Dir() string { return s.dir }

// Addr is the AMQP listener, 127.0.0.1:<port>.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URL is the AMQP URL of the default user guest (allowed from loopback)
// and the default vhost.
func (s *Server) URL() string { return s.URLFor("guest", "guest") }

// URLFor is the AMQP URL with the given credentials and the default vhost.
func (s *Server) URLFor(user, password string) string {
	return fmt.Sprintf("amqp://%s:%s@%s/", user, password, s.Addr())
}

// TLSURL is the AMQPS URL for localhost (a name in the certificate) and
// guest.
func (s *Server) TLSURL() string {
	return fmt.Sprintf("amqps://guest:guest@localhost:%d/", s.TLSPort)
}

// ctl runs rabbitmqctl against this node only.
func (s *Server) ctl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "rabbitmqctl"), append([]string{"-n", s.Node}, args...)...)
	cmd.Env = s.env
	cmd.Dir = s.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("rabbitmqctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// Ctl runs rabbitmqctl against this node and returns its output; an error
// fails the test.
func (s *Server) Ctl(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := s.ctl(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// AddUser creates a user with full permissions on the default vhost.
func (s *Server) AddUser(t testing.TB, user, password string) {
	t.Helper()
	s.Ctl(t, "add_user", user, password)
	s.Ctl(t, "set_permissions", "-p", "/", user, ".*", ".*", ".*")
}

// ChangePassword sets a user's password.
func (s *Server) ChangePassword(t testing.TB, user, password string) {
	t.Helper()
	s.Ctl(t, "change_password", user, password)
}

// MemoryAlarm raises (on) or clears the node's memory alarm by moving its
// memory high watermark, and waits until the node reports the new state.
// While the alarm is on the node blocks publishing connections
// (connection.blocked) and stops reading from them.
func (s *Server) MemoryAlarm(t testing.TB, on bool) {
	t.Helper()
	mark := "0.4"
	if on {
		mark = "0.0000001"
	}
	s.Ctl(t, "set_vm_memory_high_watermark", mark)
	deadline := time.Now().Add(time.Minute)
	for {
		out := s.Ctl(t, "eval", "rabbit_alarm:get_alarms().")
		if strings.Contains(out, "memory") == on {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("memory alarm on=%v not reported by %s: %s", on, s.Node, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// CloseConnections makes the node close every client connection (AMQP
// connection.close 320 CONNECTION_FORCED), as an operator or a node
// shutdown would.
func (s *Server) CloseConnections(t testing.TB) {
	t.Helper()
	s.Ctl(t, "close_all_connections", "closed by the test")
}

// signal sends sig to the node's process group.
func (s *Server) signal(sig syscall.Signal) (*process, error) {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		return nil, errors.New("node not running")
	}
	select {
	case <-p.exited:
		return p, nil
	default:
	}
	return p, syscall.Kill(-p.pid, sig)
}

// Pause stops the node's processes (SIGSTOP): connections stay open and
// nothing answers, like a hung broker. Resume undoes it.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	p, err := s.signal(syscall.SIGSTOP)
	if err != nil {
		t.Fatal(err)
	}
	// The signal is delivered asynchronously: wait until the node's VM (a
	// child of the start script, in its process group) is stopped, so that
	// nothing is answered after Pause returns.
	if err := sigstop.WaitGroup(p.pid, 10*time.Second); err != nil {
		t.Fatalf("rabbitmq: %v", err)
	}
}

// Resume continues a paused node (SIGCONT).
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	if _, err := s.signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// Kill kills the node (SIGKILL to its process group, no shutdown) and
// waits until it is gone.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if err := s.kill(); err != nil {
		t.Fatal(err)
	}
}

func (s *Server) kill() error {
	s.signal(syscall.SIGCONT) // a paused node dies just as well; this keeps its children from lingering
	p, err := s.signal(syscall.SIGKILL)
	if p == nil {
		return err
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(time.Minute):
		return fmt.Errorf("node %s (pid %d) did not exit after SIGKILL", s.Node, p.pid)
	}
}

// Stop shuts the node down cleanly (rabbitmqctl stop) and waits until it
// has exited.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	s.Ctl(t, "stop")
	select {
	case <-p.exited:
	case <-time.After(time.Minute):
		t.Fatalf("node %s did not exit after rabbitmqctl stop", s.Node)
	}
}

// Restart starts a stopped or killed node again on the same ports, with
// the same data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p != nil {
		select {
		case <-p.exited:
		default:
			t.Fatalf("node %s is still running", s.Node)
		}
	}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("rabbitmq node %s restarted in %v", s.Node, s.StartupTime.Round(time.Millisecond))
}

// Shutdown kills the node if it runs and removes its directory.
// Idempotent.
func (s *Server) Shutdown() {
	_ = s.kill()
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// logTail returns the end of the node's output and log, for failures.
func (s *Server) logTail() string {
	var b strings.Builder
	for _, f := range []string{filepath.Join(s.dir, "node.out"), filepath.Join(s.dir, "log", s.Node+".log")} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", filepath.Base(f), data)
	}
	return b.String()
}
