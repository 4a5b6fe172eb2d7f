package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/sluiceio/sluice/agent"
	"github.com/sluiceio/sluice/internal/loadgen"
)

// Helpers shared by the end-to-end tests of the sink backends.

// waitMetric waits until series (name with labels) has value want, for at
// most a minute.
func waitMetric(t *testing.T, p *proc, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		v := scrapeMetric(t, p, series)
		if v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v\n%s", series, v, want, p.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// deadLetters lists the agent's dead letters (at most 100000), through a
// control call with the agent's control token.
func deadLetters(t *testing.T, p *proc) []agent.DeadLetter {
	t.Helper()
	resp, err := p.control("GET", "/v1/control/deadletters?limit=100000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /v1/control/deadletters: %s %s", resp.Status, body)
	}
	var list struct{ Deadletters []agent.DeadLetter }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	return list.Deadletters
}

// loadDuring starts the load generator with cfg in the background (for an
// outage test to break the upstream meanwhile). The function it returns
// waits for the run to end and fails the test unless every push was
// acknowledged.
func loadDuring(t *testing.T, cfg loadgen.Config) (wait func() loadgen.Report) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	type result struct {
		rep loadgen.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := loadgen.Run(ctx, cfg)
		done <- result{rep, err}
	}()
	return func() loadgen.Report {
		t.Helper()
		res := <-done
		if res.err != nil {
			t.Fatal(res.err)
		}
		if len(res.rep.Errors) != 0 || res.rep.Acked == 0 {
			t.Fatalf("pushes failed during the outage: %+v", res.rep.Errors)
		}
		return res.rep
	}
}
