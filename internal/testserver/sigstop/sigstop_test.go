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
