package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Local pull queues through the real binary: consumers are goroutines
// speaking HTTP, the agent is killed with kill -9 where it matters.

type qmsg struct {
	ID      string          `json:"id"`
	Key     *string         `json:"key"`
	Value   json.RawMessage `json:"value"`
	Receipt string          `json:"receipt"`
	Attempt int             `json:"attempt"`
}

type qresp struct {
	Messages []qmsg `json:"messages"`
	Acked    int    `json:"acked"`
	Nacked   int    `json:"nacked"`
	Stale    []struct{ Receipt, Reason string }
	Code     string `json:"code"`
}

func qpost(url, queue, op string, body any) (int, qresp, error) {
	b, _ := json.Marshal(body)
	var r qresp
	resp, err := http.Post(url+"/v1/queues/"+queue+"/"+op, "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, r, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&r)
	return resp.StatusCode, r, err
}

// mustQ is qpost for the test goroutine: anything but 200 fails.
func mustQ(t *testing.T, url, queue, op string, body any) qresp {
	t.Helper()
	code, r, err := qpost(url, queue, op, body)
	if err != nil || code != 200 {
		t.Fatalf("%s %s: %d %v %s", queue, op, code, err, r.Code)
	}
	return r
}

func rcpts(ms []qmsg) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Receipt)
	}
	return out
}

// pushLines pushes n NDJSON messages {"i":<i>} (plus extra fields) to topic
// and returns their ids.
func pushLines(t *testing.T, url, topic string, n int, line func(i int) string) []string {
	t.Helper()
	var b strings.Builder
	for i := range n {
		b.WriteString(line(i) + "\n")
	}
	code, ids, err := push(url, topic, []byte(b.String()), "application/x-ndjson")
	if err != nil || code != 202 || len(ids) != n {
		t.Fatalf("push: %d %v (%d ids)", code, err, len(ids))
	}
	return ids
}

func queueEnv(spool string, extra ...string) []string {
	return append([]string{"SLUICE_SPOOL_DIR=" + spool, "SLUICE_SINKS=jobs", "SLUICE_JOBS_TYPE=queue"}, extra...)
}

type queueStat struct {
	Queues []struct {
		Name          string `json:"name"`
		BacklogBytes  int64  `json:"backlog_bytes"`
		InFlight      int    `json:"in_flight"`
		Redeliveries  int    `json:"redeliveries"`
		ExpiredLeases int    `json:"expired_leases"`
	} `json:"queues"`
}

func TestE2EQueueConcurrentConsumers(t *testing.T) {
	p := start(t, queueEnv(t.TempDir())...)
	const n, consumers = 400, 8
	ids := pushLines(t, p.url, "work", n, func(i int) string { return fmt.Sprintf(`{"i":%d}`, i) })
	var mu sync.Mutex
	holder := map[string]int{} // id -> consumer holding its lease now
	done := map[string]int{}   // id -> times processed
	var acked atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, consumers)
	deadline := time.Now().Add(60 * time.Second)
	for c := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for acked.Load() < n && time.Now().Before(deadline) {
				code, r, err := qpost(p.url, "jobs", "pull", map[string]any{"max": 5, "wait": "200ms", "visibility": "1m"})
				if err != nil || code != 200 {
					errs <- fmt.Errorf("consumer %d pull: %d %v", c, code, err)
					return
				}
				for _, m := range r.Messages {
					mu.Lock()
					if h, ok := holder[m.ID]; ok {
						mu.Unlock()
						errs <- fmt.Errorf("%s leased to consumers %d and %d at once", m.ID, h, c)
						return
					}
					holder[m.ID] = c
					mu.Unlock()
					time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond) // the work
					mu.Lock()
					delete(holder, m.ID)
					done[m.ID]++
					mu.Unlock()
				}
				if len(r.Messages) == 0 {
					continue
				}
				code, a, err := qpost(p.url, "jobs", "ack", map[string]any{"receipts": rcpts(r.Messages)})
				if err != nil || code != 200 || a.Acked != len(r.Messages) {
					errs <- fmt.Errorf("consumer %d ack: %d %v %+v", c, code, err, a)
					return
				}
				acked.Add(int64(a.Acked))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Visibility (1 m) never ran out: every message was processed once.
	for _, id := range ids {
		if done[id] != 1 {
			t.Errorf("%s processed %d times", id, done[id])
		}
	}
	if len(done) != n {
		t.Errorf("%d distinct messages processed, want %d", len(done), n)
	}
	var st queueStat
	getJSON(t, p.admin+"/v1/stats", &st)
	if len(st.Queues) != 1 || st.Queues[0].BacklogBytes != 0 || st.Queues[0].InFlight != 0 {
		t.Errorf("stats after every ack: %+v", st.Queues)
	}
}

// A consumer that takes messages and dies: they come back after the
// visibility timeout, to another consumer, with attempt 2.
func TestE2EQueueConsumerCrashRedelivers(t *testing.T) {
	p := start(t, queueEnv(t.TempDir(), "SLUICE_JOBS_VISIBILITY=1s")...)
	ids := pushLines(t, p.url, "work", 3, func(i int) string { return fmt.Sprintf(`{"i":%d}`, i) })
	var lost []qmsg
	for len(lost) < 3 {
		lost = append(lost, mustQ(t, p.url, "jobs", "pull", map[string]any{"max": 10, "wait": "5s"}).Messages...)
	}
	// The crashed consumer never acks. Another one waits for them.
	var back []qmsg
	deadline := time.Now().Add(30 * time.Second)
	for len(back) < 3 && time.Now().Before(deadline) {
		back = append(back, mustQ(t, p.url, "jobs", "pull", map[string]any{"max": 10, "wait": "5s"}).Messages...)
	}
	var got []string
	for _, m := range back {
		got = append(got, m.ID)
		if m.Attempt != 2 {
			t.Errorf("%s: attempt %d, want 2", m.ID, m.Attempt)
		}
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("redelivered %v, want %v", got, ids)
	}
	// The crashed consumer's receipts are stale now; the new ones ack.
	if r := mustQ(t, p.url, "jobs", "ack", map[string]any{"receipts": rcpts(lost)}); r.Acked != 0 || len(r.Stale) != 3 {
		t.Errorf("ack with expired receipts: %+v", r)
	}
	if r := mustQ(t, p.url, "jobs", "ack", map[string]any{"receipts": rcpts(back)}); r.Acked != 3 {
		t.Errorf("ack: %+v", r)
	}
	var st queueStat
	getJSON(t, p.admin+"/v1/stats", &st)
	if st.Queues[0].ExpiredLeases != 3 || st.Queues[0].Redeliveries != 3 {
		t.Errorf("stats: %+v", st.Queues[0])
	}
}

// kill -9 with messages leased and acknowledged: after the restart every
// unacknowledged message is handed out again (the leased ones with their
// attempt count), and no acknowledged one comes back.
func TestE2EQueueKill9(t *testing.T) {
	dir := t.TempDir()
	p := start(t, queueEnv(dir)...)
	ids := pushLines(t, p.url, "work", 200, func(i int) string { return fmt.Sprintf(`{"i":%d}`, i) })
	var leased []qmsg
	for len(leased) < 100 {
		leased = append(leased, mustQ(t, p.url, "jobs", "pull", map[string]any{"max": 100 - len(leased), "wait": "5s", "visibility": "1h"}).Messages...)
	}
	// Acknowledge every other one of the first 100: acks above the
	// lowest unacknowledged message must survive too.
	var ackNow []qmsg
	ackedIDs := map[string]bool{}
	for i, m := range leased {
		if i%2 == 0 || i >= 80 {
			ackNow = append(ackNow, m)
			ackedIDs[m.ID] = true
		}
	}
	if r := mustQ(t, p.url, "jobs", "ack", map[string]any{"receipts": rcpts(ackNow)}); r.Acked != len(ackNow) {
		t.Fatalf("ack: %+v", r)
	}
	inFlight := map[string]bool{}
	for _, m := range leased {
		if !ackedIDs[m.ID] {
			inFlight[m.ID] = true
		}
	}
	kill9(t, p)

	p = start(t, queueEnv(dir)...)
	got := map[string]qmsg{}
	deadline := time.Now().Add(60 * time.Second)
	for len(got) < 200-len(ackedIDs) && time.Now().Before(deadline) {
		for _, m := range mustQ(t, p.url, "jobs", "pull", map[string]any{"max": 100, "wait": "2s"}).Messages {
			if _, dup := got[m.ID]; dup {
				t.Errorf("%s handed out twice after the restart", m.ID)
			}
			got[m.ID] = m
		}
	}
	// Nothing more is there.
	if extra := mustQ(t, p.url, "jobs", "pull", map[string]any{"max": 100, "wait": "300ms"}).Messages; len(extra) > 0 {
		t.Errorf("%d more messages after the expected ones", len(extra))
	}
	lost := 0
	for _, id := range ids {
		m, ok := got[id]
		switch {
		case ackedIDs[id] && ok:
			t.Errorf("%s was acknowledged before the kill and came back", id)
		case !ackedIDs[id] && !ok:
			lost++
		case inFlight[id] && m.Attempt != 2:
			t.Errorf("%s was in flight at the kill: attempt %d, want 2", id, m.Attempt)
		case ok && !inFlight[id] && m.Attempt != 1:
			t.Errorf("%s was never handed out: attempt %d, want 1", id, m.Attempt)
		}
	}
	if lost > 0 {
		t.Errorf("%d unacknowledged messages lost", lost)
	}
	t.Logf("acknowledged before kill -9: %d, in flight: %d, handed out after restart: %d", len(ackedIDs), len(inFlight), len(got))
}

// A message nobody manages to process: dead-lettered after MAX_ATTEMPTS
// (reason max_attempts), then replayed into the queue, keeping its id.
func TestE2EQueueMaxAttemptsDeadLetterReplay(t *testing.T) {
	p := start(t, queueEnv(t.TempDir(), "SLUICE_JOBS_MAX_ATTEMPTS=2")...)
	id := pushLines(t, p.url, "work", 1, func(int) string { return `{"poison":true}` })[0]
	for attempt := 1; attempt <= 2; attempt++ {
		var ms []qmsg
		for len(ms) == 0 {
			ms = mustQ(t, p.url, "jobs", "pull", map[string]any{"wait": "5s"}).Messages
		}
		if ms[0].ID != id || ms[0].Attempt != attempt {
			t.Fatalf("pull %d: %+v", attempt, ms[0])
		}
		mustQ(t, p.url, "jobs", "nack", map[string]any{"receipts": rcpts(ms)})
	}
	var st struct {
		Status string
		Sinks  map[string]struct{ Status, Reason string }
	}
	deadline := time.Now().Add(30 * time.Second)
	for getJSON(t, p.url+"/v1/messages/"+id, &st); st.Status != "failed"; getJSON(t, p.url+"/v1/messages/"+id, &st) {
		if time.Now().After(deadline) {
			t.Fatalf("status %+v, want failed", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Sinks["jobs"].Reason != "max_attempts" {
		t.Fatalf("status %+v", st)
	}
	if ms := mustQ(t, p.url, "jobs", "pull", map[string]any{"wait": "200ms"}).Messages; len(ms) != 0 {
		t.Fatalf("dead letter still handed out: %+v", ms)
	}
	if n := replayDeadLetters(p); n != 1 {
		t.Fatalf("replayed %d", n)
	}
	var ms []qmsg
	for len(ms) == 0 {
		ms = mustQ(t, p.url, "jobs", "pull", map[string]any{"wait": "5s"}).Messages
	}
	if ms[0].ID != id || ms[0].Attempt != 1 || string(ms[0].Value) != `{"poison":true}` {
		t.Fatalf("after replay: %+v", ms[0])
	}
	mustQ(t, p.url, "jobs", "ack", map[string]any{"receipts": rcpts(ms)})
	for getJSON(t, p.url+"/v1/messages/"+id, &st); st.Status != "delivered"; getJSON(t, p.url+"/v1/messages/"+id, &st) {
		if time.Now().After(deadline) {
			t.Fatalf("status %+v, want delivered", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Per-key ordering under concurrent consumers that also give messages
// back: a key's messages are processed one at a time, in push order.
func TestE2EQueueOrderedUnderConcurrency(t *testing.T) {
	p := start(t, queueEnv(t.TempDir(), "SLUICE_JOBS_ORDERED=true")...)
	const keys, per, consumers = 5, 40, 6
	// Keys come from the Sluice-Key header: one push per key and round
	// keeps push order per key.
	for i := range per {
		for k := range keys {
			req, _ := http.NewRequest("POST", p.url+"/v1/topics/work", strings.NewReader(fmt.Sprintf(`{"k":%d,"i":%d}`, k, i)))
			req.Header.Set("Sluice-Key", fmt.Sprint(k))
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != 202 {
				t.Fatalf("push: %v", err)
			}
			resp.Body.Close()
		}
	}
	var mu sync.Mutex
	next := make([]int, keys) // next i expected per key
	out := make([]bool, keys) // a message of the key is being processed
	var finished atomic.Int64
	errs := make(chan error, 100)
	var wg sync.WaitGroup
	deadline := time.Now().Add(90 * time.Second)
	for c := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(c), 7))
			for finished.Load() < keys*per && time.Now().Before(deadline) {
				code, r, err := qpost(p.url, "jobs", "pull", map[string]any{"max": 3, "wait": "200ms"})
				if err != nil || code != 200 {
					errs <- fmt.Errorf("pull: %d %v", code, err)
					return
				}
				for _, m := range r.Messages {
					var v struct{ K, I int }
					json.Unmarshal(m.Value, &v)
					mu.Lock()
					if out[v.K] {
						errs <- fmt.Errorf("key %d: message %d handed out while another is out", v.K, v.I)
					}
					if v.I != next[v.K] {
						errs <- fmt.Errorf("key %d: got message %d, want %d", v.K, v.I, next[v.K])
					}
					out[v.K] = true
					mu.Unlock()
					time.Sleep(time.Duration(rnd.IntN(300)) * time.Microsecond)
					give := rnd.IntN(10) == 0
					mu.Lock() // bookkeeping before the call: the next one may come at once
					out[v.K] = false
					if !give {
						next[v.K]++
					}
					mu.Unlock()
					op := "ack"
					if give {
						op = "nack"
					}
					if code, _, err := qpost(p.url, "jobs", op, map[string]any{"receipts": []string{m.Receipt}}); err != nil || code != 200 {
						errs <- fmt.Errorf("%s: %d %v", op, code, err)
						return
					}
					if !give {
						finished.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 10 {
			t.Error(err)
		}
	}
	for k := range keys {
		if next[k] != per {
			t.Errorf("key %d: %d of %d processed", k, next[k], per)
		}
	}
}

// A long poll returns the message pushed while it waits (not at the end of
// its wait, which would leave it empty).
func TestE2EQueueLongPollWakes(t *testing.T) {
	p := start(t, queueEnv(t.TempDir())...)
	type res struct {
		r   qresp
		err error
		d   time.Duration
	}
	ch := make(chan res, 1)
	go func() {
		t0 := time.Now()
		code, r, err := qpost(p.url, "jobs", "pull", map[string]any{"wait": "20s"})
		if err == nil && code != 200 {
			err = fmt.Errorf("status %d", code)
		}
		ch <- res{r, err, time.Since(t0)}
	}()
	time.Sleep(300 * time.Millisecond) // the poll is waiting
	t0 := time.Now()
	id := pushLines(t, p.url, "work", 1, func(int) string { return `"wake up"` })[0]
	r := <-ch
	if r.err != nil || len(r.r.Messages) != 1 || r.r.Messages[0].ID != id {
		t.Fatalf("long poll: %+v %v", r.r, r.err)
	}
	t.Logf("long poll answered %v after the push was acknowledged (%v after it started)", time.Since(t0), r.d)
}

// sluice queue pull|ack and sluice status, as an operator's script uses
// them.
func TestE2EQueueCLI(t *testing.T) {
	env := queueEnv(t.TempDir())
	p := start(t, env...)
	id := pushLines(t, p.url, "work", 1, func(int) string { return `{"job":1}` })[0]
	cliEnv := append(env, "SLUICE_LISTEN="+strings.TrimPrefix(p.url, "http://"), "SLUICE_ADMIN_LISTEN="+strings.TrimPrefix(p.admin, "http://"))
	run := func(stdin string, args ...string) string {
		cmd := exec.Command(binary, args...)
		cmd.Env = cliEnv
		cmd.Stdin = strings.NewReader(stdin)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, b)
		}
		return string(b)
	}
	if o := run("", "status"); !strings.Contains(o, "QUEUE") || !strings.Contains(o, "jobs") {
		t.Fatalf("status:\n%s", o)
	}
	var m qmsg
	if err := json.Unmarshal([]byte(run("", "queue", "pull", "jobs", "-wait", "5s")), &m); err != nil || m.ID != id {
		t.Fatalf("pull: %+v %v", m, err)
	}
	if o := run(m.Receipt+"\n", "queue", "ack", "jobs", "-"); !strings.Contains(o, `"acked":1`) {
		t.Fatalf("ack: %s", o)
	}
	if o := run("", "queue", "pull", "jobs"); strings.TrimSpace(o) != "" {
		t.Fatalf("pull after ack: %q", o)
	}
}
