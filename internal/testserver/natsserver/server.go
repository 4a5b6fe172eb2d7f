package natsserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluiceio/sluice/internal/freeport"
	"github.com/sluiceio/sluice/internal/syncbuf"
	"github.com/sluiceio/sluice/internal/testserver/sigstop"
)

// startLimit bounds how long a start waits for the server to serve
// JetStream; a liveness bound, not a speed requirement.
const startLimit = 30 * time.Second

// User is one user of the server's authorization block: Name and Password,
// or Nkey (a public user nkey, "U...").
type User struct {
	Name     string
	Password string
	Nkey     string
	// Publish, when set, lists the only subjects the user may publish to
	// (wildcards allowed); nil = all.
	Publish []string
}

// Options configures a Server. The zero value is a server without
// authentication, with the default max_payload (1 MiB).
type Options struct {
	// Binary is the nats-server to run; "" = Binary(t).
	Binary string
	// Users are the users the server accepts, besides the admin user the
	// helper always adds when Users is set. Exclusive with Token.
	Users []User
	// Token is the one token the server accepts. Exclusive with Users.
	Token string
	// MaxPayload is the server's max_payload in bytes; 0 = its default.
	MaxPayload int
	// TLSCert and TLSKey, both PEM files, make the server require TLS.
	TLSCert, TLSKey string
}

// Server is a nats-server process with JetStream, listening on a free
// loopback port, its store in a temporary directory. It is killed when the
// test ends. Methods are safe for concurrent use.
type Server struct {
	t       testing.TB
	bin     string
	dir     string // config and store live here
	conf    string
	port    int
	adminPW string
	mu      sync.Mutex
	opts    Options
	cmd     *exec.Cmd
	exited  chan struct{}
	logs    *syncbuf.Buffer
	paused  bool
}

// Start runs a server and waits until it serves JetStream.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Binary == "" {
		o.Binary = Binary(t)
	}
	if len(o.Users) > 0 && o.Token != "" {
		t.Fatal("natsserver: Users and Token are exclusive")
	}
	s := &Server{t: t, bin: o.Binary, dir: t.TempDir(), opts: o, logs: &syncbuf.Buffer{}, adminPW: randomHex(12)}
	s.conf = filepath.Join(s.dir, "nats.conf")
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("nats-server log:\n%s", s.Logs())
		}
	})
	// A freeport port is free when it is picked, not when the server binds
	// it: another test may take it meanwhile. The server then exits at
	// start-up; it is started again on another port.
	for attempt := 0; ; attempt++ {
		s.port = pickPort(t)
		err := s.start()
		if err == nil {
			return s
		}
		if attempt == 4 || !strings.Contains(s.Logs(), "address already in use") {
			t.Fatalf("natsserver: %v\n%s", err, s.Logs())
		}
	}
}

// pickPort picks the server's port (a test replaces it to hand out a
// taken one).
var pickPort = freeport.Port

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is nats://127.0.0.1:<port>, without credentials.
func (s *Server) URL() string { return "nats://" + s.Addr() }

// URLWithUser is URL with user and password in it.
func (s *Server) URLWithUser(user, password string) string {
	u := url.URL{Scheme: "nats", Host: s.Addr(), User: url.UserPassword(user, password)}
	return u.String()
}

// URLWithToken is URL with a token in it.
func (s *Server) URLWithToken(token string) string {
	u := url.URL{Scheme: "nats", Host: s.Addr(), User: url.User(token)}
	return u.String()
}

// Version is the running binary's version.
func (s *Server) Version() string { return BinaryVersion(s.bin) }

// StoreDir is the JetStream store directory, kept across restarts.
func (s *Server) StoreDir() string { return filepath.Join(s.dir, "store") }

// Logs is what the server printed so far, across restarts.
func (s *Server) Logs() string { return s.logs.String() }

func (s *Server) writeConfig() error {
	o := s.opts
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %q\n", s.Addr())
	fmt.Fprintf(&b, "server_name: sluice_test_%d\n", s.port)
	if o.MaxPayload > 0 {
		fmt.Fprintf(&b, "max_payload: %d\n", o.MaxPayload)
	}
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n  max_memory_store: 64MB\n  max_file_store: 4GB\n}\n", s.StoreDir())
	if o.TLSCert != "" {
		fmt.Fprintf(&b, "tls {\n  cert_file: %q\n  key_file: %q\n}\n", o.TLSCert, o.TLSKey)
	}
	switch {
	case o.Token != "":
		fmt.Fprintf(&b, "authorization {\n  token: %q\n}\n", o.Token)
	case len(o.Users) > 0:
		b.WriteString("authorization {\n  users = [\n")
		fmt.Fprintf(&b, "    {user: %q, password: %q}\n", "admin", s.adminPW)
		for _, u := range o.Users {
			if u.Nkey != "" {
				fmt.Fprintf(&b, "    {nkey: %q", u.Nkey)
			} else {
				fmt.Fprintf(&b, "    {user: %q, password: %q", u.Name, u.Password)
			}
			if u.Publish != nil {
				b.WriteString(", permissions: {publish: [")
				for i, p := range u.Publish {
					if i > 0 {
						b.WriteString(", ")
					}
					fmt.Fprintf(&b, "%q", p)
				}
				b.WriteString("]}")
			}
			b.WriteString("}\n")
		}
		b.WriteString("  ]\n}\n")
	}
	tmp := s.conf + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.conf)
}

// start runs the process and waits until JetStream answers.
func (s *Server) start() error {
	s.mu.Lock()
	if err := s.writeConfig(); err != nil {
		s.mu.Unlock()
		return err
	}
	cmd := exec.Command(s.bin, "-c", s.conf)
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited, s.paused = cmd, exited, false
	s.mu.Unlock()

	deadline := time.Now().Add(startLimit)
	for {
		select {
		case <-exited:
			return fmt.Errorf("nats-server exited during start-up: %v", cmd.ProcessState)
		default:
		}
		if err := s.ping(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("nats-server not serving JetStream after %v: %w", startLimit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping connects as admin and asks JetStream for the account's info.
func (s *Server) ping() error {
	nc, err := nats.Connect(s.adminURL(), s.adminOpts(nats.Timeout(time.Second), nats.NoReconnect())...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// Restart starts the server again after Stop or Kill, on the same port and
// store directory.
func (s *Server) Restart() {
	s.t.Helper()
	var err error
	for attempt := 0; attempt < 50; attempt++ { // the port may take a moment to be free
		if err = s.start(); err == nil {
			return
		}
		if !strings.Contains(s.Logs(), "address already in use") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("natsserver: restart: %v\n%s", err, s.Logs())
}

// Kill sends SIGKILL and waits for the process to exit. It does nothing
// when the server is not running.
func (s *Server) Kill() { s.signalAndWait(syscall.SIGKILL) }

// Stop sends SIGTERM (the server shuts down cleanly) and waits for the
// process to exit.
func (s *Server) Stop() { s.signalAndWait(syscall.SIGTERM) }

func (s *Server) signalAndWait(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exited, paused := s.cmd, s.exited, s.paused
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	if paused && sig != syscall.SIGKILL {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Pause stops the process with SIGSTOP and returns once it is stopped:
// connections stay open and nothing is answered, as with a hung server or
// a network partition. Resume undoes it.
func (s *Server) Pause() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.paused {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGSTOP)
	s.paused = true
	if err := sigstop.Wait(s.cmd.Process.Pid, 10*time.Second); err != nil {
		s.t.Fatalf("natsserver: %v", err)
	}
}

// Resume continues a paused server.
func (s *Server) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && s.paused {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
		s.paused = false
	}
}

// Reconfigure applies f to the options, rewrites the configuration file
// and makes the running server reload it (SIGHUP). Only what nats-server
// reloads takes effect (users, tokens, max_payload, TLS files).
func (s *Server) Reconfigure(f func(*Options)) {
	s.t.Helper()
	s.mu.Lock()
	f(&s.opts)
	err := s.writeConfig()
	cmd := s.cmd
	s.mu.Unlock()
	if err != nil {
		s.t.Fatalf("natsserver: write config: %v", err)
	}
	if cmd != nil {
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			s.t.Fatalf("natsserver: reload: %v", err)
		}
	}
}

// WaitLog waits until the server's log contains substr, at most limit.
func (s *Server) WaitLog(substr string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for !strings.Contains(s.Logs(), substr) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

func (s *Server) adminURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	scheme := "nats"
	if s.opts.TLSCert != "" {
		scheme = "tls"
	}
	switch {
	case s.opts.Token != "":
		return scheme + "://" + url.User(s.opts.Token).String() + "@" + s.Addr()
	case len(s.opts.Users) > 0:
		return scheme + "://" + url.UserPassword("admin", s.adminPW).String() + "@" + s.Addr()
	}
	return scheme + "://" + s.Addr()
}

func (s *Server) adminOpts(extra ...nats.Option) []nats.Option {
	opts := []nats.Option{nats.Name("sluice-test-admin")}
	s.mu.Lock()
	tlsOn := s.opts.TLSCert != ""
	s.mu.Unlock()
	if tlsOn {
		// The test's own CA signed the certificate; the harness does not
		// check it (the sink under test does).
		opts = append(opts, nats.Secure(insecureTLS()))
	}
	return append(opts, extra...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
