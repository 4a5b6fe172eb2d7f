// Package leakcheck fails a test binary when goroutines (connections and
// their reader and writer loops, pools, test servers) outlive the tests
// that started them. The sink packages call it from TestMain.
package leakcheck

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// Run runs the tests, then after (when not nil: shared servers to stop),
// then, if the tests passed and the binary is not fuzzing, waits up to 10 s
// for the goroutine count to fall back to what it was before the tests.
// It returns the exit code for os.Exit: 1 with every goroutine's stack on
// stderr when some are left.
func Run(m *testing.M, after func()) int {
	before := runtime.NumGoroutine()
	code := m.Run()
	if after != nil {
		after()
	}
	// The fuzzing engine keeps its own goroutines (signal handling).
	fuzzing := flag.Lookup("test.fuzz") != nil && flag.Lookup("test.fuzz").Value.String() != ""
	if code != 0 || fuzzing {
		return code
	}
	// Closed connections and pools wind down asynchronously.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		fmt.Fprintf(os.Stderr, "%d goroutines leaked (%d before the tests):\n%s\n", n-before, before, buf)
		return 1
	}
	return 0
}
