// Package sigstop waits for a SIGSTOP to take effect. The signal is
// delivered asynchronously: a test server paused to play a hung upstream
// may still answer a request sent right after kill(2) returned, unless the
// test waits until every thread of the process is stopped.
package sigstop

import (
	"bytes"
	"fmt"
	"os"
	"time"
)

// Wait returns once every thread of process pid is stopped (Linux
// /proc/<pid>/task/*/stat state T or t), or an error after timeout. Where
// /proc cannot be read (not Linux) it returns nil at once: there is nothing
// better to wait for.
func Wait(pid int, timeout time.Duration) error {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/task", pid)); err != nil {
		return nil
	}
	deadline := time.Now().Add(timeout)
	for !stopped(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d not stopped %v after SIGSTOP", pid, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

// stopped reports whether every thread of process pid is stopped.
func stopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false
		}
		// pid (comm) state ...: the state follows the last ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 || i+2 >= len(stat) || (stat[i+2] != 'T' && stat[i+2] != 't') {
			return false
		}
	}
	return true
}
