// Package sigstop waits for a SIGSTOP to take effect. The signal is
// delivered asynchronously: a test server paused to play a hung upstream
// may still answer a request sent right after kill(2) returned, unless the
// test waits until every thread of the process is stopped.
package sigstop

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
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

// WaitGroup is Wait for every process of process group pgid (a server
// started by a script that runs the server as its child, stopped with
// kill(-pgid)): it returns once each of them is stopped.
func WaitGroup(pgid int, timeout time.Duration) error {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/task", pgid)); err != nil {
		return nil
	}
	deadline := time.Now().Add(timeout)
	for {
		all := true
		for _, pid := range group(pgid) {
			all = all && stopped(pid)
		}
		if all {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process group %d not stopped %v after SIGSTOP", pgid, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// group lists the processes of process group pgid (at least pgid itself,
// so that a group whose leader is gone does not count as stopped).
func group(pgid int) []int {
	pids := []int{pgid}
	des, _ := os.ReadDir("/proc")
	for _, de := range des {
		pid, err := strconv.Atoi(de.Name())
		if err != nil || pid == pgid {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(stat[i+1:])
		if len(f) >= 3 && string(f[2]) == strconv.Itoa(pgid) {
			pids = append(pids, pid)
		}
	}
	return pids
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
