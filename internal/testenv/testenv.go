// Package testenv decides what a test does when something it needs from
// outside the repository (a server, a tool, a runtime) is missing: skip
// with one line on a developer's machine, fail in CI.
//
// scripts/test installs every such dependency (scripts/deps/*.sh) and sets
// SLUICE_REQUIRE_DEPS=1, as does CI=true: there a missing dependency is a
// broken build, not a reason to skip.
package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// Required reports whether missing dependencies fail tests instead of
// skipping them.
func Required() bool {
	return os.Getenv("SLUICE_REQUIRE_DEPS") == "1" || os.Getenv("CI") == "true"
}

// Missing ends the test because what is missing: a failure when
// dependencies are required, a skip otherwise. how says how to get it.
func Missing(t testing.TB, what, how string) {
	t.Helper()
	if Required() {
		t.Fatalf("%s is missing and dependencies are required (CI or SLUICE_REQUIRE_DEPS=1): %s", what, how)
	}
	t.Skipf("%s is missing (%s); set SLUICE_REQUIRE_DEPS=1 to fail instead of skipping", what, how)
}

// CacheDir is where scripts/deps keeps downloads, outside the repository:
// $SLUICE_CACHE_DIR, or ~/.cache/sluice.
func CacheDir() string {
	if d := os.Getenv("SLUICE_CACHE_DIR"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "sluice")
	}
	return filepath.Join(os.TempDir(), "sluice-cache")
}
