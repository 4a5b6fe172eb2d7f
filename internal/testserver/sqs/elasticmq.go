package sqsserver

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/freeport"
	"github.com/sluiceio/sluice/internal/syncbuf"
	"github.com/sluiceio/sluice/internal/testenv"
	"github.com/sluiceio/sluice/internal/testserver/sigstop"
)

// ElasticMQVersion is the ElasticMQ release scripts/deps/sqs.sh installs.
const ElasticMQVersion = "1.7.1"

// AccountID is the account in ElasticMQ's queue URLs.
const AccountID = "000000000000"

// Region is the region the tests sign with.
const Region = "us-east-1"

// startLimit bounds a server's start-up (a liveness bound).
const startLimit = 60 * time.Second

// Options configures an ElasticMQ server.
type Options struct {
	// Queues are created at start-up, and again at every restart (names
	// ending in .fifo are FIFO queues).
	Queues []string
	// Persist keeps messages in an H2 database in the server's directory,
	// written at every commit, so that they survive kill -9.
	Persist bool
}

// Server is a running ElasticMQ.
type Server struct {
	t    testing.TB
	dir  string
	port int
	opts Options
	cmd  *exec.Cmd
	log  *syncbuf.Buffer
	done chan struct{}
}

// ElasticMQLib returns the directory of ElasticMQ's jars, or "" when it is
// not installed.
func ElasticMQLib() string {
	dirs := []string{os.Getenv("SLUICE_ELASTICMQ_LIB"), filepath.Join(testenv.CacheDir(), "elasticmq-"+ElasticMQVersion, "lib")}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if m, _ := filepath.Glob(filepath.Join(d, "elasticmq-server_*.jar")); len(m) > 0 {
			return d
		}
	}
	return ""
}

// Start starts ElasticMQ on a free loopback port; it is killed when the
// test ends. A missing installation ends the test through testenv.Missing;
// a server that does not start fails it.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	lib := ElasticMQLib()
	if lib == "" {
		testenv.Missing(t, "ElasticMQ "+ElasticMQVersion, "run scripts/deps/sqs.sh (Maven Central, org.elasticmq:elasticmq-server_2.13)")
	}
	if _, err := exec.LookPath("java"); err != nil {
		testenv.Missing(t, "java", "install a Java 17 runtime (scripts/deps/sqs.sh)")
	}
	s := &Server{t: t, dir: t.TempDir(), port: pickPort(t), opts: o}
	// A freeport port is free when it is picked, not when the server binds
	// it: another test may take it meanwhile. ElasticMQ then logs that the
	// bind failed and waits; it is killed and started on another port.
	for try := 1; ; try++ {
		if err := s.writeConfig(); err != nil {
			t.Fatal(err)
		}
		if s.start(try < 3) {
			break
		}
		t.Logf("elasticmq: port %d taken before the server bound it; starting again on another port", s.port)
		s.port = pickPort(t)
	}
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			// Its INFO lines (one per queue created) would push the
			// test's own failure out of a truncated CI excerpt.
			t.Logf("elasticmq log (last lines but INFO):\n%s", tail(withoutInfo(s.log.String()), 15))
		}
	})
	return s
}

// pickPort picks the server's port (a test replaces it to hand out a
// taken one).
var pickPort = freeport.Port

func (s *Server) writeConfig() error {
	var b strings.Builder
	fmt.Fprintf(&b, "include classpath(\"application.conf\")\n")
	fmt.Fprintf(&b, "node-address { protocol = http, host = 127.0.0.1, port = %d, context-path = \"\" }\n", s.port)
	fmt.Fprintf(&b, "rest-sqs { enabled = true, bind-port = %d, bind-hostname = \"127.0.0.1\", sqs-limits = strict }\n", s.port)
	b.WriteString("rest-stats { enabled = false }\nqueues {\n")
	for _, q := range s.opts.Queues {
		fmt.Fprintf(&b, "  %q {\n", q)
		if strings.HasSuffix(q, ".fifo") {
			b.WriteString("    fifo = true\n")
		}
		b.WriteString("  }\n")
	}
	b.WriteString("}\n")
	if s.opts.Persist {
		fmt.Fprintf(&b, "messages-storage { enabled = true, uri = %q }\n", "jdbc:h2:"+filepath.Join(s.dir, "h2")+";WRITE_DELAY=0")
	}
	return os.WriteFile(filepath.Join(s.dir, "elasticmq.conf"), []byte(b.String()), 0o644)
}

// start starts the server and waits until it is up. With bindRetry set,
// a server that cannot bind its port is killed and reported (false)
// instead of failing the test.
func (s *Server) start(bindRetry bool) bool {
	t := s.t
	t.Helper()
	s.log = &syncbuf.Buffer{}
	s.done = make(chan struct{})
	cmd := exec.Command("java", "-Xms64m", "-Xmx512m", "-XX:+UseSerialGC",
		"-Dconfig.file="+filepath.Join(s.dir, "elasticmq.conf"),
		"-cp", filepath.Join(ElasticMQLib(), "*"), "org.elasticmq.server.Main")
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start elasticmq: %v", err)
	}
	s.cmd = cmd
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(startLimit)
	for !strings.Contains(s.log.String(), "started in") {
		if bindRetry && strings.Contains(s.log.String(), "Bind failed") {
			s.Kill()
			return false
		}
		select {
		case <-s.done:
			t.Fatalf("elasticmq exited during start-up:\n%s", tail(s.log.String(), 30))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("elasticmq not started after %v:\n%s", startLimit, tail(s.log.String(), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// Endpoint is the server's base URL, for the SDK's BaseEndpoint.
func (s *Server) Endpoint() string { return fmt.Sprintf("http://127.0.0.1:%d", s.port) }

// QueueURL is the URL of queue name.
func (s *Server) QueueURL(name string) string {
	return fmt.Sprintf("%s/%s/%s", s.Endpoint(), AccountID, name)
}

// Kill stops the server with SIGKILL and waits for it to exit. Without
// Options.Persist it forgets its messages.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts a killed server again on the same port with the same data
// and queues.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	deadline := time.Now().Add(startLimit)
	for { // the port can take a moment to be free again
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", s.port))
		if err == nil {
			ln.Close()
			break
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("port %d still in use: %v", s.port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.start(false)
}

// Pause stops the server's process (SIGSTOP): connections stay open and
// nothing is answered until Resume.
func (s *Server) Pause() {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGSTOP)
	if err := sigstop.Wait(s.cmd.Process.Pid, 10*time.Second); err != nil {
		s.t.Fatalf("elasticmq: %v", err)
	}
}

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { _ = s.cmd.Process.Signal(syscall.SIGCONT) }

// Logs returns what the server printed since its last start.
func (s *Server) Logs() string { return s.log.String() }

// withoutInfo drops the log's INFO lines.
func withoutInfo(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if !strings.Contains(line, " INFO ") {
			b.WriteString(line)
		}
	}
	return b.String()
}

func tail(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
