package rabbitmq

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/leakcheck"
	"github.com/sluiceio/sluice/internal/testenv"
	rmqtest "github.com/sluiceio/sluice/internal/testserver/rabbitmq"
)

// testMaxMessageSize is the shared node's max_message_size: above the
// conformance suite's 64 KiB message, low enough to provoke the refusal.
const testMaxMessageSize = 100000

var (
	nodeOnce sync.Once
	nodeSrv  *rmqtest.Server
	nodeErr  error
)

// node returns the package's RabbitMQ node, started on first use and
// shared by the tests, which run one after the other and leave it as they
// found it (queues they declare are their own; alarms and pauses are
// undone in cleanups).
func node(t testing.TB) *rmqtest.Server {
	t.Helper()
	nodeOnce.Do(func() {
		nodeSrv, nodeErr = rmqtest.Launch(rmqtest.Options{
			TLS:    true,
			Config: []string{fmt.Sprintf("max_message_size = %d", testMaxMessageSize)},
		})
		if nodeErr == nil {
			fmt.Fprintf(os.Stderr, "rabbitmq node %s started in %v\n", nodeSrv.Node, nodeSrv.StartupTime.Round(time.Millisecond))
		}
	})
	if errors.Is(nodeErr, rmqtest.ErrMissing) {
		testenv.Missing(t, "rabbitmq-server", "apt-get install -y rabbitmq-server (scripts/deps/rabbitmq.sh)")
	}
	if nodeErr != nil {
		t.Fatal(nodeErr)
	}
	return nodeSrv
}

// TestMain stops the shared node, then fails the package when goroutines
// (connections, channel loops, consumers) outlive the tests that started
// them.
func TestMain(m *testing.M) {
	os.Exit(leakcheck.Run(m, func() {
		if nodeSrv != nil {
			nodeSrv.Shutdown()
		}
	}))
}
