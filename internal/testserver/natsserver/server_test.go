package natsserver

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/sluiceio/sluice/internal/freeport"
)

// TestStartRetriesOnATakenPort: when the port picked for the server is
// taken by the time it binds (another test's connection took it), Start
// starts it again on another port instead of failing the test.
func TestStartRetriesOnATakenPort(t *testing.T) {
	taken := freeport.Take(t)
	pickPort = taken.Pick
	defer func() { pickPort = freeport.Port }()
	s := Start(t, Options{})
	if s.port == taken.Port || taken.Picks != 2 {
		t.Fatalf("server on port %d after %d picks; the taken port was %d", s.port, taken.Picks, taken.Port)
	}
	nc, err := nats.Connect(s.URL())
	if err != nil {
		t.Fatalf("the server does not answer on its new port: %v", err)
	}
	nc.Close()
}
