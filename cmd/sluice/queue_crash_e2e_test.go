package main

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// "A crash of the agent alone loses no attempt count": a pull is answered
// once its counts are written. Pushes and acks keep the spool's commit
// rounds busy (the counts' append queues behind the acks, which wait for
// those rounds) while pulls take messages with MAX_ATTEMPTS=1; after
// kill -9 none of them may come back. (Answering before the write lost the
// counts of several pulls here, and their messages came back.)
func TestE2EQueueAttemptCountsSurviveKill9UnderLoad(t *testing.T) {
	for try := range 5 {
		dir := t.TempDir()
		env := queueEnv(dir, "SLUICE_JOBS_MAX_ATTEMPTS=1")
		p := start(t, env...)
		pushLines(t, p.url, "work", 2000, func(i int) string { return fmt.Sprintf(`{"i":%d}`, i) })
		var mu sync.Mutex
		handed := map[string]int{} // message -> the foreground pull that had it (-1: the acking consumer)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { // pushes keep the spool's commit rounds busy
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var b []byte
				for i := range 500 {
					b = fmt.Appendf(b, `{"bg":%d,"pad":"%0200d"}`+"\n", i, i)
				}
				push(p.url, "bg", b, "application/x-ndjson")
			}
		}()
		go func() { // a consumer that acknowledges what it pulls
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, r, err := qpost(p.url, "jobs", "pull", map[string]any{"max": 10, "visibility": "1h"})
				if err != nil || code != 200 {
					return
				}
				mu.Lock()
				for _, m := range r.Messages {
					handed[m.ID] = -1
				}
				mu.Unlock()
				if len(r.Messages) > 0 {
					qpost(p.url, "jobs", "ack", map[string]any{"receipts": rcpts(r.Messages)})
				}
			}
		}()
		time.Sleep(300 * time.Millisecond)
		// Pulls that are never acknowledged; the kill follows the last.
		for i := range 20 {
			code, r, err := qpost(p.url, "jobs", "pull", map[string]any{"max": 5, "visibility": "1h"})
			if err != nil || code != 200 {
				break
			}
			mu.Lock()
			for _, m := range r.Messages {
				handed[m.ID] = i
			}
			mu.Unlock()
		}
		kill9(t, p)
		close(stop)
		wg.Wait()

		p = start(t, env...)
		var again []qmsg
		pulls := map[int]bool{}
		for {
			ms := mustQ(t, p.url, "jobs", "pull", map[string]any{"max": 1000, "wait": "500ms"}).Messages
			if len(ms) == 0 {
				break
			}
			for _, m := range ms {
				if i, ok := handed[m.ID]; ok {
					again = append(again, m)
					pulls[i] = true
				}
			}
			mustQ(t, p.url, "jobs", "ack", map[string]any{"receipts": rcpts(ms)})
		}
		kill9(t, p)
		if len(again) > 0 {
			t.Fatalf("try %d: MAX_ATTEMPTS=1; after kill -9, %d messages handed out before it were handed out again (first %s, attempt %d), from %d pulls (-1 = the acking consumer's): %v",
				try, len(again), again[0].ID, again[0].Attempt, len(pulls), pulls)
		}
	}
}

// Acknowledgements answered before a kill -9 that
// lands while the queue log compacts (a checkpoint every 10 000 log
// records) under concurrent pushes, pulls and acks never come back.
func TestE2EQueueAckedNeverBackAcrossCompaction(t *testing.T) {
	dir := t.TempDir()
	env := queueEnv(dir)
	p := start(t, env...)
	const n = 12000
	for i := 0; i < n; i += 2000 {
		pushLines(t, p.url, "work", 2000, func(j int) string { return fmt.Sprintf(`{"i":%d}`, i+j) })
	}
	var mu sync.Mutex
	acked := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, r, err := qpost(p.url, "jobs", "pull", map[string]any{"max": 2, "visibility": "1h"})
				if err != nil || code != 200 {
					return
				}
				for _, m := range r.Messages {
					if code, ar, err := qpost(p.url, "jobs", "ack", map[string]any{"receipts": []string{m.Receipt}}); err == nil && code == 200 && ar.Acked == 1 {
						mu.Lock()
						acked[m.ID] = true
						mu.Unlock()
					}
				}
			}
		}()
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		mu.Lock()
		k := len(acked)
		mu.Unlock()
		if k >= 9500 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var st struct {
		Queues []struct {
			Log struct{ Appended, Truncations, FirstSeq, LastSeq uint64 } `json:"log"`
		} `json:"queues"`
	}
	getJSON(t, p.admin+"/v1/stats", &st)
	kill9(t, p)
	close(stop)
	wg.Wait()
	t.Logf("queue log before the kill: %+v", st.Queues)
	p = start(t, env...)
	defer kill9(t, p)
	back := 0
	for {
		ms := mustQ(t, p.url, "jobs", "pull", map[string]any{"max": 1000, "wait": "500ms"}).Messages
		if len(ms) == 0 {
			break
		}
		for _, m := range ms {
			if acked[m.ID] {
				back++
			}
		}
		mustQ(t, p.url, "jobs", "ack", map[string]any{"receipts": rcpts(ms)})
	}
	t.Logf("acknowledged before the kill: %d", len(acked))
	if back > 0 {
		t.Fatalf("%d acknowledged messages came back after kill -9", back)
	}
}
