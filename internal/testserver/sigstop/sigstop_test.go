package sigstop

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func TestWaitSeesTheStop(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep command: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	pid := cmd.Process.Pid
	if stopped(pid) {
		t.Fatal("a running process counts as stopped")
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := Wait(pid, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if !stopped(pid) {
		t.Fatal("Wait returned before the process stopped")
	}
}

// A group whose leader is a script running the server as its child: the
// group counts as stopped only once the child is stopped too, and a
// running child keeps it from counting as stopped.
func TestWaitGroupSeesTheChild(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 60 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Skipf("no sh: %v", err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGCONT)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for len(group(pgid)) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the script's child never appeared in its process group")
		}
		time.Sleep(5 * time.Millisecond)
	}
	child := group(pgid)[1]
	// Only the leader stopped: the group is not.
	if err := syscall.Kill(pgid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := Wait(pgid, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := WaitGroup(pgid, 50*time.Millisecond); err == nil {
		t.Fatal("WaitGroup returned while the child runs")
	}
	if err := syscall.Kill(-pgid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := WaitGroup(pgid, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if !stopped(child) {
		t.Fatal("WaitGroup returned before the child stopped")
	}
}
