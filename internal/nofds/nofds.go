// Package nofds takes every file descriptor of the test process away for a
// while, so that the next open fails with EMFILE from the kernel, as it does
// in a sidecar holding thousands of connections. Tests that use it must not
// run in parallel with others: the limit is the process's.
package nofds

import (
	"os"
	"syscall"
	"testing"
)

// Starve lowers RLIMIT_NOFILE to the lowest free descriptor, or to the
// lowest of open's descriptors if lower (free again once closed): no open
// succeeds until restore is called (at the latest by the test's cleanup).
func Starve(t testing.TB, open ...*os.File) (restore func()) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	free := f.Fd()
	f.Close()
	for _, o := range open {
		free = min(free, o.Fd())
	}
	low := lim
	low.Cur = uint64(free)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	done := false
	restore = func() {
		if done {
			return
		}
		done = true
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(restore)
	return restore
}
