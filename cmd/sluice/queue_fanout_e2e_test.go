package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Guarantees 1, 2 and 6 together, through the real binary: a topic routed
// to two queues and a file sink; small segments so that the spool
// truncates its front while one queue holds a lease on an old message.
//
//   - phase A (1500 messages): both queues pull and acknowledge all, the
//     file sink delivers all: the spool truncates the segments below;
//   - m0: queue jobs leases it for an hour and never acknowledges it;
//   - phase B (1500 messages): jobs acknowledges all of them (ahead of
//     m0), jobs2 none.
//
// Then kill -9. After the restart jobs hands out m0 alone (attempt 2:
// nothing it acknowledged comes back, its lease ended with the crash), and
// jobs2 hands out m0 and phase B, each once, attempt 1, and nothing of
// phase A: truncation dropped nothing a queue had not resolved, and the
// two queues kept their own positions.
func TestE2EQueueFanOutTruncationKill9(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(t.TempDir(), "out")
	env := []string{
		"SLUICE_SPOOL_DIR=" + dir, "SLUICE_SPOOL_SEGMENT_BYTES=64KiB", "SLUICE_SPOOL_MAX_BYTES=64MiB",
		"SLUICE_SINKS=jobs,jobs2,arch",
		"SLUICE_JOBS_TYPE=queue", "SLUICE_JOBS_TOPICS=work",
		"SLUICE_JOBS2_TYPE=queue", "SLUICE_JOBS2_TOPICS=work",
		"SLUICE_ARCH_TYPE=file", "SLUICE_ARCH_PATH=" + out, "SLUICE_ARCH_TOPICS=work",
	}
	p := start(t, env...)
	line := func(tag string) func(int) string {
		return func(i int) string { return fmt.Sprintf(`{"%s":%d,"pad":"%0100d"}`, tag, i, i) }
	}
	// drain pulls from queue q until want messages came (acknowledging
	// them when ack is set) and returns them by id.
	drain := func(q string, want int, vis string, ack bool) map[string]qmsg {
		got := map[string]qmsg{}
		deadline := time.Now().Add(60 * time.Second)
		for len(got) < want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d messages", q, len(got), want)
			}
			ms := mustQ(t, p.url, q, "pull", map[string]any{"max": 1000, "wait": "1s", "visibility": vis}).Messages
			for _, m := range ms {
				if _, dup := got[m.ID]; dup {
					t.Fatalf("%s handed out %s twice", q, m.ID)
				}
				got[m.ID] = m
			}
			if ack && len(ms) > 0 {
				if r := mustQ(t, p.url, q, "ack", map[string]any{"receipts": rcpts(ms)}); r.Acked != len(ms) {
					t.Fatalf("%s ack: %+v", q, r)
				}
			}
		}
		return got
	}
	phaseA := pushLines(t, p.url, "work", 1500, line("a"))
	drain("jobs", 1500, "1h", true)
	drain("jobs2", 1500, "1h", true)
	m0 := pushLines(t, p.url, "work", 1, line("m0"))[0]
	if got := drain("jobs", 1, "1h", false); got[m0].ID != m0 {
		t.Fatalf("jobs handed out %v, want m0", got)
	}
	phaseB := pushLines(t, p.url, "work", 1500, line("b"))
	drain("jobs", 1500, "1h", true)
	waitRecords(t, out, 3001)
	// The front below m0 is truncated (truncation waits for the cursors'
	// persisted positions and whole segments).
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct {
			Spool struct{ FirstSeq uint64 } `json:"spool"`
		}
		resp, err := http.Get(p.admin + "/v1/stats")
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		if st.Spool.FirstSeq > 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the spool did not truncate its front (first seq %d)", st.Spool.FirstSeq)
		}
		time.Sleep(50 * time.Millisecond)
	}
	kill9(t, p)

	p = start(t, env...)
	again := map[string]qmsg{}
	for {
		ms := mustQ(t, p.url, "jobs", "pull", map[string]any{"max": 1000, "wait": "1500ms", "visibility": "1h"}).Messages
		if len(ms) == 0 {
			break
		}
		for _, m := range ms {
			again[m.ID] = m
		}
	}
	if len(again) != 1 || again[m0].Attempt != 2 {
		var ids []string
		for id := range again {
			ids = append(ids, id)
		}
		t.Fatalf("jobs after kill -9 handed out %d messages (%s), want m0 alone with attempt 2 (got %+v)", len(again), strings.Join(ids[:min(5, len(ids))], ","), again[m0])
	}
	got2 := drain("jobs2", 1501, "1h", true)
	if extra := mustQ(t, p.url, "jobs2", "pull", map[string]any{"max": 1000, "wait": "1s"}).Messages; len(extra) != 0 {
		t.Fatalf("jobs2 handed out %d more messages, first %s", len(extra), extra[0].ID)
	}
	for _, id := range append(phaseB, m0) {
		if m, ok := got2[id]; !ok || m.Attempt != 1 {
			t.Fatalf("jobs2: %s missing or not first attempt: %+v", id, m)
		}
	}
	for _, id := range phaseA {
		if _, ok := got2[id]; ok {
			t.Fatalf("jobs2 handed out %s of phase A again, acknowledged before the crash", id)
		}
	}
	kill9(t, p)
}
