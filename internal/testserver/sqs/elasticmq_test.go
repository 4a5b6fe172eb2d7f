package sqsserver

import (
	"net"
	"testing"
)

// TestStartRetriesOnATakenPort: when the port picked for ElasticMQ is
// taken by the time it binds (another test's connection took it), the
// server logs that the bind failed and waits; Start kills it and starts it
// again on another port instead of failing the test after a minute.
func TestStartRetriesOnATakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	picks := 0
	pickPort = func(t testing.TB) int {
		if picks++; picks == 1 {
			return takenPort
		}
		return FreePort(t)
	}
	defer func() { pickPort = FreePort }()
	s := Start(t, Options{})
	if s.port == takenPort || picks != 2 {
		t.Fatalf("server on port %d after %d picks; the taken port was %d", s.port, picks, takenPort)
	}
	c, err := net.Dial("tcp", s.Endpoint()[len("http://"):])
	if err != nil {
		t.Fatalf("the server does not answer on its new port: %v", err)
	}
	c.Close()
}
