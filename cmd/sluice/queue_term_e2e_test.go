package main

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// Messages pushed to a queue just before a SIGTERM, while older ones are
// leased, acknowledged out of order or nacked with a delay, are all handed
// out after the restart.
func TestE2EQueueMessagesPushedBeforeSIGTERMComeBack(t *testing.T) {
	dir := t.TempDir()
	p := start(t, queueEnv(dir)...)
	pushLines(t, p.url, "work", 100, func(i int) string { return fmt.Sprintf(`{"i":%d}`, i) })
	var leased []qmsg
	for len(leased) < 60 {
		leased = append(leased, mustQ(t, p.url, "jobs", "pull", map[string]any{"max": 60 - len(leased), "wait": "5s", "visibility": "1h"}).Messages...)
	}
	var ack, nack []qmsg
	for i, m := range leased {
		switch {
		case i%3 == 0:
			nack = append(nack, m)
		case i%3 == 1:
			ack = append(ack, m)
		}
	}
	mustQ(t, p.url, "jobs", "ack", map[string]any{"receipts": rcpts(ack)})
	mustQ(t, p.url, "jobs", "nack", map[string]any{"receipts": rcpts(nack), "delay": "1s"})
	late := pushLines(t, p.url, "work", 500, func(i int) string { return fmt.Sprintf(`{"late":%d}`, i) })
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}

	p = start(t, queueEnv(dir)...)
	want := map[string]bool{}
	for _, id := range late {
		want[id] = true
	}
	deadline := time.Now().Add(60 * time.Second)
	got := 0
	for len(want) > 0 && time.Now().Before(deadline) {
		ms := mustQ(t, p.url, "jobs", "pull", map[string]any{"max": 100, "wait": "2s"}).Messages
		for _, m := range ms {
			if want[m.ID] {
				delete(want, m.ID)
				got++
			}
		}
		mustQ(t, p.url, "jobs", "ack", map[string]any{"receipts": rcpts(ms)})
	}
	if len(want) > 0 {
		t.Fatalf("%d of the %d messages pushed before the SIGTERM never handed out after the restart", len(want), len(late))
	}
}
