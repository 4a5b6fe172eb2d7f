package artemis

import (
	"net"
	"testing"
)

// TestStartRetriesOnATakenPort: when the port picked for the broker is
// taken by the time it binds (another test's connection took it), Start
// starts it again on another port instead of failing the test.
func TestStartRetriesOnATakenPort(t *testing.T) {
	Require(t)
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
		return freePort(t)
	}
	defer func() { pickPort = freePort }()
	b := Start(t, Options{})
	if b.Port == takenPort || picks != 2 {
		t.Fatalf("broker on port %d after %d picks; the taken port was %d", b.Port, picks, takenPort)
	}
	b.Dial(t, "admin", "admin") // answers on the new port
}
