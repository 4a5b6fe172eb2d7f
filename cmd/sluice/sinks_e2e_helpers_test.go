package main

import (
	"testing"
	"time"

	"github.com/sluiceio/sluice/agent"
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

// deadLetters lists the agent's dead letters (at most 100000).
func deadLetters(t *testing.T, p *proc) []agent.DeadLetter {
	t.Helper()
	var list struct{ Deadletters []agent.DeadLetter }
	getJSON(t, p.url+"/v1/control/deadletters?limit=100000", &list)
	return list.Deadletters
}
