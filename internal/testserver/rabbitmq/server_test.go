package rabbitmq

import (
	"net"
	"strings"
	"testing"
)

// TestStartRetriesOnATakenPort: when the AMQP port picked for the node is
// taken by the time it binds (another test's connection took it), Start
// starts it again on other ports instead of failing the test.
func TestStartRetriesOnATakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	picks := 0
	pickPorts = func(n int) ([]int, error) {
		ports, err := freePorts(n)
		if picks++; picks == 1 && err == nil {
			ports[0] = takenPort
		}
		return ports, err
	}
	defer func() { pickPorts = freePorts }()
	s := Start(t, Options{})
	if s.Port == takenPort || picks != 2 {
		t.Fatalf("node on port %d after %d picks; the taken port was %d", s.Port, picks, takenPort)
	}
	if out := s.Ctl(t, "status"); !strings.Contains(out, s.Node) {
		t.Fatalf("rabbitmqctl status does not name the node:\n%s", out)
	}
}
