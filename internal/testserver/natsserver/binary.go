package natsserver

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluiceio/sluice/internal/testenv"
)

// Version is the nats-server release scripts/deps/nats.sh builds with go
// install: it matches the nats.go client sluice uses.
const Version = "v2.15.3"

// Env names the variables scripts/deps/nats.sh exports.
const (
	// EnvBinary is the path of the nats-server Version binary.
	EnvBinary = "SLUICE_NATS_SERVER"
	// EnvDebianBinary is the path of Debian's nats-server (2.9.10 on
	// bookworm), the version a Debian host runs.
	EnvDebianBinary = "SLUICE_NATS_SERVER_DEBIAN"
)

const install = "scripts/deps/nats.sh (go install github.com/nats-io/nats-server/v2@" + Version + " into $SLUICE_CACHE_DIR/nats-server/" + Version + ")"

// Binary returns the nats-server the tests run: $SLUICE_NATS_SERVER, or the
// one scripts/deps/nats.sh built into the cache. Without it the test is
// skipped, or fails when dependencies are required (testenv).
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvBinary); p != "" {
		if isExec(p) {
			return p
		}
		t.Fatalf("%s=%s is not an executable file", EnvBinary, p)
	}
	p := filepath.Join(testenv.CacheDir(), "nats-server", Version, "nats-server")
	if isExec(p) {
		return p
	}
	testenv.Missing(t, "nats-server "+Version, install)
	return ""
}

// DebianBinary returns Debian's nats-server ($SLUICE_NATS_SERVER_DEBIAN, or
// nats-server on PATH), or "" when there is none: tests run against it in
// addition to Binary, where it is installed.
func DebianBinary() string {
	if p := os.Getenv(EnvDebianBinary); p != "" && isExec(p) {
		return p
	}
	for _, p := range []string{"/usr/sbin/nats-server", "/usr/bin/nats-server"} {
		if isExec(p) {
			return p
		}
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	return ""
}

// BinaryVersion returns what `bin --version` prints ("v2.15.3"), or "?".
func BinaryVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "?"
	}
	s := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(s, ' '); i >= 0 {
		s = s[i+1:]
	}
	return s
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
