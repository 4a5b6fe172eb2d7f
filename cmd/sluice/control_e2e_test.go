package main

import (
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluiceio/sluice/agent"
	"github.com/sluiceio/sluice/config"
	"github.com/sluiceio/sluice/spool"
)

// A non-loopback ingest listener without SLUICE_AUTH_TOKEN refuses to
// start, naming the variables and the opt-out. The address is a TEST-NET
// one that no interface has: before the check existed the agent failed only
// at bind time, with a different message (and no test binds 0.0.0.0).
func TestE2ENonLoopbackListenWithoutTokenRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(binary, "run")
	cmd.Env = append(fileSinkEnv(filepath.Join(dir, "spool"), filepath.Join(dir, "out")),
		"SLUICE_LISTEN=192.0.2.1:7101", "SLUICE_ADMIN_LISTEN="+freePort(t))
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("started:\n%s", out)
	}
	for _, want := range []string{"SLUICE_LISTEN", "SLUICE_AUTH_TOKEN", "SLUICE_ALLOW_UNAUTHENTICATED=true"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("start-up error does not name %s:\n%s", want, out)
		}
	}
}

// A loopback client without the control token cannot drain the agent (as a
// callback to the agent's own listener could before); the CLI can.
func TestE2EControlNeedsTheControlToken(t *testing.T) {
	dir := t.TempDir()
	p := start(t, fileSinkEnv(filepath.Join(dir, "spool"), filepath.Join(dir, "out"))...)
	for _, path := range []string{"/v1/control/drain", "/v1/control/deadletters/purge"} {
		resp, err := http.Post(p.url+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("POST %s without the control token: %s", path, resp.Status)
		}
	}
	if err := agentReady(p); err != nil {
		t.Fatalf("a refused control call stopped the agent: %v", err)
	}
	resp, err := p.control("POST", "/v1/control/drain")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("drain with the control token: %s", resp.Status)
	}
	if err := p.wait(t); err != nil {
		t.Fatalf("exit after drain: %v", err)
	}
}

// config checks SLUICE_DEADLETTER_MAX_BYTES with constants it cannot import:
// they must be the agent's and the spool's.
func TestDeadLetterBoundsAgree(t *testing.T) {
	if got, want := config.DeadLetterRecordOverhead, agent.RecordSlack+agent.DeadLetterOverhead+spool.RecordOverhead; got != want {
		t.Fatalf("config.DeadLetterRecordOverhead = %d, the agent and spool need %d", got, want)
	}
	if config.MaxSinkNameBytes != agent.MaxSinkNameBytes {
		t.Fatalf("sink name bound: config %d, agent %d", config.MaxSinkNameBytes, agent.MaxSinkNameBytes)
	}
	const msg, hdr = 1 << 20, 16 << 10
	if got, want := int(config.MinDeadletterBytes(msg, hdr)), agent.MaxDeadLetterBytes(msg, hdr)+spool.RecordOverhead; got != want {
		t.Fatalf("MinDeadletterBytes %d, a max dead letter takes %d on disk", got, want)
	}
}
