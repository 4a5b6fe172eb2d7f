package artemis

import (
	"testing"

	"github.com/sluiceio/sluice/internal/freeport"
)

// TestStartRetriesOnATakenPort: when the port picked for the broker is
// taken by the time it binds (another test's connection took it), Start
// starts it again on another port instead of failing the test.
func TestStartRetriesOnATakenPort(t *testing.T) {
	Require(t)
	taken := freeport.Take(t)
	pickPort = taken.Pick
	defer func() { pickPort = freeport.Port }()
	b := Start(t, Options{})
	if b.Port == taken.Port || taken.Picks != 2 {
		t.Fatalf("broker on port %d after %d picks; the taken port was %d", b.Port, taken.Picks, taken.Port)
	}
	b.Dial(t, "admin", "admin") // answers on the new port
}
