package artemis

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/freeport"
	"github.com/sluiceio/sluice/internal/testenv"
	"github.com/sluiceio/sluice/internal/testserver/sigstop"
)

// Version is the distribution scripts/deps/artemis.sh installs.
const Version = "2.40.0"

// DefaultHeap is the broker's -Xmx when Options.Heap is empty.
const DefaultHeap = "256m"

// startLimit bounds how long Start waits for the AMQP port; a liveness
// bound for a loaded 2-core machine, not a speed claim.
const startLimit = 90 * time.Second

// Options shape the broker instance. The zero value is a broker with one
// user, "admin"/"admin", that auto-creates addresses and queues.
type Options struct {
	// Users maps user names to passwords; each gets every permission
	// (role amq). Default {"admin": "admin"}. Anonymous logins are refused.
	Users map[string]string
	// NoAutoCreate turns off auto-creation of addresses and queues: a link
	// to an address that does not exist is refused.
	NoAutoCreate bool
	// AddressSettings is raw XML inserted before the catch-all
	// <address-setting match="#">, e.g. a small max-size-bytes for one
	// address.
	AddressSettings string
	// Addresses is raw XML inserted into <addresses>, e.g.
	// <address name="orders"><anycast><queue name="orders"/></anycast></address>.
	Addresses string
	// AcceptorParams is appended to the AMQP acceptor's URL parameters,
	// starting with ';'.
	AcceptorParams string
	// StaticUsers makes the login module read its users file once
	// (reload=false), for tests that do not call SetPassword or Revoke.
	// With reload on, Artemis 2.40's properties login module now and then
	// fails a valid login under concurrent checks (security-invalidation-
	// interval is 0 here, so every send is checked), and the broker
	// refuses that one message (amqp:unauthorized-access) while it
	// accepts the next ones in flight.
	StaticUsers bool
	// Heap is the JVM's -Xmx. Default DefaultHeap.
	Heap string
	// TLS adds a second AMQP acceptor, with TLS, on TLSPort: its
	// certificate (self-signed, for 127.0.0.1 and localhost) is in
	// Broker.CAFile. Needs the JDK's keytool.
	TLS bool
}

// Broker is one running (or stopped) Artemis instance.
type Broker struct {
	Home string // the distribution
	Dir  string // the instance: etc/, data/, log/
	Port int    // the AMQP acceptor, on 127.0.0.1

	// With Options.TLS: the AMQP-over-TLS acceptor on 127.0.0.1, and the
	// PEM certificate that verifies it.
	TLSPort int
	CAFile  string

	// StartupTime is how long the last start took until the AMQP port
	// answered.
	StartupTime time.Duration

	opts    Options
	users   map[string]string
	revoked map[string]bool

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	log    *os.File
}

// Home returns the Artemis distribution directory, or "" when it is not
// installed.
func home() string {
	if h := os.Getenv("SLUICE_ARTEMIS_HOME"); h != "" {
		return h
	}
	h := filepath.Join(testenv.CacheDir(), "artemis", "apache-artemis-"+Version)
	if _, err := os.Stat(filepath.Join(h, "lib", "artemis-boot.jar")); err != nil {
		return ""
	}
	return h
}

// Available reports whether a broker can be started here (distribution and
// java present), without starting one.
func Available() bool {
	_, err := exec.LookPath("java")
	return err == nil && home() != ""
}

// Require ends the test (testenv.Missing) when the distribution or java
// is missing.
func Require(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("java"); err != nil {
		testenv.Missing(t, "java (for ActiveMQ Artemis)", "apt-get install -y default-jre-headless")
	}
	if home() == "" {
		testenv.Missing(t, "ActiveMQ Artemis "+Version, ". scripts/deps/lib.sh && . scripts/deps/artemis.sh")
	}
}

// Start creates an instance in a temporary directory and starts the broker
// on a free loopback port; it is killed when the test ends.
func Start(t testing.TB, o Options) *Broker {
	t.Helper()
	Require(t)
	if o.Users == nil {
		o.Users = map[string]string{"admin": "admin"}
	}
	if o.Heap == "" {
		o.Heap = DefaultHeap
	}
	b := &Broker{Home: home(), Dir: t.TempDir(), Port: pickPort(t), opts: o, users: map[string]string{}, revoked: map[string]bool{}}
	for u, p := range o.Users {
		b.users[u] = p
	}
	if o.TLS {
		if _, err := exec.LookPath("keytool"); err != nil {
			testenv.Missing(t, "keytool (for a TLS broker)", "apt-get install -y default-jdk-headless")
		}
		b.TLSPort = pickPort(t)
	}
	t.Cleanup(func() {
		b.stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("artemis log (tail):\n%s", b.LogTail(4000))
		}
	})
	// A freeport port is free when it is picked, not when the broker binds
	// it: another test may take it meanwhile. The broker then exits at
	// start-up; it is started again on other ports.
	for try := 1; ; try++ {
		if err := writeInstance(b.Dir, b.Port, b.TLSPort, o, &b.CAFile); err != nil {
			t.Fatalf("artemis: write instance: %v", err)
		}
		if b.start(t, try < 3) {
			return b
		}
		t.Logf("artemis: port %d or %d taken before the broker bound it; starting again on other ports", b.Port, b.TLSPort)
		b.Port = pickPort(t)
		if o.TLS {
			b.TLSPort = pickPort(t)
		}
	}
}

// TLSAddr is the TLS acceptor's host:port (Options.TLS).
func (b *Broker) TLSAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.TLSPort)) }

// Addr is the AMQP acceptor's host:port.
func (b *Broker) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Port)) }

// URL is amqp://user:password@host:port (without credentials when user is
// empty).
func (b *Broker) URL(user, password string) string {
	u := url.URL{Scheme: "amqp", Host: b.Addr()}
	if user != "" {
		u.User = url.UserPassword(user, password)
	}
	return u.String()
}

// Pid is the broker JVM's process id, 0 when it is not running.
func (b *Broker) Pid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return 0
	}
	return b.cmd.Process.Pid
}

// start starts the broker and waits until its AMQP port answers. With
// bindRetry set, a broker that exits at start-up because an acceptor's
// port is taken is reported (false) instead of failing the test.
func (b *Broker) start(t testing.TB, bindRetry bool) bool {
	t.Helper()
	b.mu.Lock()
	if b.cmd != nil {
		b.mu.Unlock()
		t.Fatal("artemis: already running")
	}
	logf, err := os.OpenFile(filepath.Join(b.Dir, "log", "broker.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		b.mu.Unlock()
		t.Fatal(err)
	}
	logStart, _ := logf.Seek(0, io.SeekEnd)
	etc := filepath.Join(b.Dir, "etc")
	cmd := exec.Command("java",
		"-Xms64m", "-Xmx"+b.opts.Heap, "-XX:+UseSerialGC", "-Xss512k",
		"-Dlog4j2.configurationFile=file:"+filepath.Join(etc, "log4j2.properties"),
		"-Dlog4j2.disableJmx=true",
		"-Djava.security.auth.login.config="+filepath.Join(etc, "login.config"),
		"-classpath", filepath.Join(b.Home, "lib", "artemis-boot.jar"),
		"-Dartemis.home="+b.Home,
		"-Dartemis.instance="+b.Dir,
		"-Djava.io.tmpdir="+filepath.Join(b.Dir, "tmp"),
		"-Ddata.dir="+filepath.Join(b.Dir, "data"),
		"-Dartemis.instance.etc="+etc,
		"--add-opens", "java.base/jdk.internal.misc=ALL-UNNAMED",
		"org.apache.activemq.artemis.boot.Artemis", "run", "xml:"+filepath.Join(etc, "bootstrap.xml"),
	)
	cmd.Dir = b.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a signal sent to the test's group (Ctrl-C)
	// does not race with Cleanup; the broker is stopped by its pid.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		b.mu.Unlock()
		t.Fatalf("artemis: start java: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	b.cmd, b.exited, b.log = cmd, exited, logf
	b.mu.Unlock()

	deadline := time.Now().Add(startLimit)
	for {
		if amqpAnswers(b.Addr()) {
			b.StartupTime = time.Since(began)
			return true
		}
		select {
		case <-exited:
			b.mu.Lock()
			b.cmd = nil
			b.mu.Unlock()
			if bindRetry {
				if log, err := os.ReadFile(logf.Name()); err == nil && int64(len(log)) >= logStart &&
					bytes.Contains(log[logStart:], []byte("Failed to bind acceptor")) {
					return false
				}
			}
			t.Fatalf("artemis exited during start-up:\n%s", b.LogTail(4000))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("artemis: AMQP port %s not answering after %v:\n%s", b.Addr(), startLimit, b.LogTail(4000))
		}
	}
}

// amqpAnswers reports whether addr speaks AMQP: it sends the SASL protocol
// header and expects the broker's own SASL header back.
func amqpAnswers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	hdr := []byte{'A', 'M', 'Q', 'P', 3, 1, 0, 0}
	if _, err := c.Write(hdr); err != nil {
		return false
	}
	got := make([]byte, len(hdr))
	if _, err := io.ReadFull(c, got); err != nil {
		return false
	}
	return bytes.Equal(got, hdr)
}

// Stop stops the broker with SIGTERM (an orderly shutdown) and waits for
// it to exit.
func (b *Broker) Stop(t testing.TB) {
	t.Helper()
	if err := b.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// Kill stops the broker with SIGKILL, as a crash, and waits for it.
func (b *Broker) Kill(t testing.TB) {
	t.Helper()
	if err := b.stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// Restart starts a stopped broker again: same instance, journal and port.
func (b *Broker) Restart(t testing.TB) {
	t.Helper()
	b.start(t, false)
}

// Pause stops the broker JVM with SIGSTOP: connections stay open and
// nothing answers. The returned function resumes it (SIGCONT) and may be
// called more than once.
func (b *Broker) Pause(t testing.TB) (resume func()) {
	t.Helper()
	pid := b.Pid()
	if pid == 0 {
		t.Fatal("artemis: not running")
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The signal is delivered asynchronously: wait until every thread of
	// the JVM is stopped.
	if err := sigstop.Wait(pid, 10*time.Second); err != nil {
		t.Fatalf("artemis: %v", err)
	}
	var once sync.Once
	resume = func() { once.Do(func() { _ = syscall.Kill(pid, syscall.SIGCONT) }) }
	t.Cleanup(resume)
	return resume
}

func (b *Broker) stop(sig syscall.Signal) error {
	b.mu.Lock()
	cmd, exited := b.cmd, b.exited
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // a paused JVM cannot act on SIGTERM
	if err := cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("artemis: signal %v: %w", sig, err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("artemis: did not exit within 60s of %v; killed", sig)
	}
}

// SetPassword changes (or adds) a user's password while the broker runs;
// the broker's login module reloads its users file on change. Connections
// already open stay open.
func (b *Broker) SetPassword(t testing.TB, user, password string) {
	t.Helper()
	b.mu.Lock()
	b.users[user] = password
	b.mu.Unlock()
	b.rewriteUsers(t)
}

// Revoke takes every permission from user (its role), or gives them back
// with grant true, while the broker runs: its next send on an open
// connection is refused.
func (b *Broker) Revoke(t testing.TB, user string, grant bool) {
	t.Helper()
	b.mu.Lock()
	if grant {
		delete(b.revoked, user)
	} else {
		b.revoked[user] = true
	}
	b.mu.Unlock()
	b.rewriteUsers(t)
}

func (b *Broker) rewriteUsers(t testing.TB) {
	t.Helper()
	b.mu.Lock()
	users := make(map[string]string, len(b.users))
	for u, p := range b.users {
		users[u] = p
	}
	revoked := make(map[string]bool, len(b.revoked))
	for u := range b.revoked {
		revoked[u] = true
	}
	b.mu.Unlock()
	etc := filepath.Join(b.Dir, "etc")
	// The module compares modification times: make sure the new file's is
	// later than the old one's even on a coarse clock.
	time.Sleep(10 * time.Millisecond)
	if err := writeUsers(etc, users, revoked); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(time.Second)
	_ = os.Chtimes(filepath.Join(etc, "artemis-users.properties"), now, now)
	_ = os.Chtimes(filepath.Join(etc, "artemis-roles.properties"), now, now)
}

// LogTail returns the last n bytes of the broker's log.
func (b *Broker) LogTail(n int) string {
	data, err := os.ReadFile(filepath.Join(b.Dir, "log", "broker.log"))
	if err != nil {
		return err.Error()
	}
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return string(data)
}

// pickPort picks the broker's ports (a test replaces it to hand out a
// taken one).
var pickPort = freeport.Port
