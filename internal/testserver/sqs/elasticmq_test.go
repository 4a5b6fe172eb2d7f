package sqsserver

import (
	"net"
	"testing"

	"github.com/sluiceio/sluice/internal/freeport"
)

// TestStartRetriesOnATakenPort: when the port picked for ElasticMQ is
// taken by the time it binds (another test's connection took it), the
// server logs that the bind failed and waits; Start kills it and starts it
// again on another port instead of failing the test after a minute.
func TestStartRetriesOnATakenPort(t *testing.T) {
	taken := freeport.Take(t)
	pickPort = taken.Pick
	defer func() { pickPort = freeport.Port }()
	s := Start(t, Options{})
	if s.port == taken.Port || taken.Picks != 2 {
		t.Fatalf("server on port %d after %d picks; the taken port was %d", s.port, taken.Picks, taken.Port)
	}
	c, err := net.Dial("tcp", s.Endpoint()[len("http://"):])
	if err != nil {
		t.Fatalf("the server does not answer on its new port: %v", err)
	}
	c.Close()
}
