package amqp1

import (
	"os"
	"testing"

	"github.com/sluiceio/sluice/internal/leakcheck"
)

// TestMain fails the package when goroutines (go-amqp connections with
// their reader and writer, sessions, links) outlive the tests that started
// them.
func TestMain(m *testing.M) {
	os.Exit(leakcheck.Run(m, nil))
}
