package kafka

import (
	"os"
	"testing"

	"github.com/sluiceio/sluice/internal/leakcheck"
)

// TestMain fails the package when goroutines (kafka-go connections and
// pools, kfake brokers, consumers) outlive the tests that started them.
func TestMain(m *testing.M) {
	os.Exit(leakcheck.Run(m, nil))
}
