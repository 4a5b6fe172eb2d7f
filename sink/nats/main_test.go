package nats

import (
	"os"
	"testing"

	"github.com/sluiceio/sluice/internal/leakcheck"
)

// TestMain fails the package when goroutines (nats.go connections, the
// publishing goroutines of Writes) outlive the tests that started them.
func TestMain(m *testing.M) {
	os.Exit(leakcheck.Run(m, nil))
}
