package rabbitmq

import (
	"strings"
	"testing"

	"github.com/sluiceio/sluice/internal/freeport"
)

// TestStartRetriesOnATakenPort: when the AMQP port picked for the node is
// taken by the time it binds (another test's connection took it), Start
// starts it again on other ports instead of failing the test.
func TestStartRetriesOnATakenPort(t *testing.T) {
	taken := freeport.Take(t)
	pickPorts = taken.Ports
	defer func() { pickPorts = freeport.Ports }()
	s := Start(t, Options{})
	if s.Port == taken.Port || taken.Picks != 2 {
		t.Fatalf("node on port %d after %d picks; the taken port was %d", s.Port, taken.Picks, taken.Port)
	}
	if out := s.Ctl(t, "status"); !strings.Contains(out, s.Node) {
		t.Fatalf("rabbitmqctl status does not name the node:\n%s", out)
	}
}
