package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A loopback peer alone cannot make control calls (before: any loopback
// client — and sluice itself, following a message's Sluice-Callback — could
// drain the agent or purge its dead letters). The token the CLI reads is in
// a 0600 file in the spool directory while the agent runs.
func TestControlNeedsMoreThanALoopbackPeer(t *testing.T) {
	mem := &memSink{}
	dir := t.TempDir()
	ta := startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	for _, c := range []struct{ method, path string }{
		{"POST", "/v1/control/drain"},
		{"POST", "/v1/control/deadletters/purge"},
		{"POST", "/v1/control/deadletters/replay"},
		{"GET", "/v1/control/deadletters"},
	} {
		if r := do(t, c.method, ta.url+c.path, "", nil, nil); r.status != 401 || r.code != "unauthorized" {
			t.Fatalf("%s %s from loopback without the control token: %d %s", c.method, c.path, r.status, r.code)
		}
	}
	p := ControlTokenPath(filepath.Join(dir, "spool"))
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("control token file mode %v, want 0600", fi.Mode().Perm())
	}
	tok, err := ReadControlToken(filepath.Join(dir, "spool"))
	if err != nil || tok != ta.a.ControlToken() || len(tok) != 64 {
		t.Fatalf("token file: %q %v", tok, err)
	}
	if r := do(t, "GET", ta.url+"/v1/control/deadletters", "", nil, map[string]string{ControlTokenHeader: tok}); r.status != 200 {
		t.Fatalf("with the token from the file: %+v", r)
	}
	if r := do(t, "POST", ta.url+"/v1/control/drain", "", nil, map[string]string{ControlTokenHeader: tok}); r.status != 202 {
		t.Fatalf("drain with the token: %+v", r)
	}
	select {
	case err := <-ta.done:
		ta.done <- err
	case <-time.After(20 * time.Second):
		t.Fatal("agent did not stop after the drain")
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("control token file left after stop: %v", err)
	}
}

// With SLUICE_AUTH_TOKEN the bearer token authorizes control calls, as
// every other call.
func TestControlWithAuthToken(t *testing.T) {
	mem := &memSink{}
	ta := startAgent(t, t.TempDir(), Options{AuthToken: "s3cret", Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	if r := do(t, "GET", ta.url+"/v1/control/deadletters", "", nil, nil); r.status != 401 {
		t.Fatalf("no token: %+v", r)
	}
	if r := do(t, "GET", ta.url+"/v1/control/deadletters", "", nil, map[string]string{"Authorization": "Bearer s3cret"}); r.status != 200 {
		t.Fatalf("bearer token: %+v", r)
	}
}
