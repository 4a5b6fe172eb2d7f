package artemis

import (
	"net"
	"testing"
)

// TestStartKillRestart: the broker answers AMQP on its port, stops
// answering once killed, and answers again after a restart on the same
// port.
func TestStartKillRestart(t *testing.T) {
	b := Start(t, Options{})
	t.Logf("artemis %s started in %v (pid %d, port %d)", Version, b.StartupTime, b.Pid(), b.Port)
	if !amqpAnswers(b.Addr()) {
		t.Fatal("AMQP port does not answer after Start")
	}
	b.Kill(t)
	if c, err := net.Dial("tcp", b.Addr()); err == nil {
		c.Close()
		t.Fatal("port still open after Kill")
	}
	b.Restart(t)
	t.Logf("restarted in %v", b.StartupTime)
	if !amqpAnswers(b.Addr()) {
		t.Fatal("AMQP port does not answer after Restart")
	}
	b.Stop(t)
	if b.Pid() != 0 {
		t.Fatal("pid after Stop")
	}
}
