package agent

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// Found by an adversarial review of the pull queues: receipts and request
// records across restarts, and the edges of a lease.

// A receipt listed twice in one ack is acknowledged by its first
// occurrence; the second is already_done, not lease_lost (which would say
// the lease expired or another consumer has the message): findLocked
// answers already_done for a lease whose ack is being written.
func TestQueueRepeatedReceiptInOneAckIsAlreadyDone(t *testing.T) {
	dir := t.TempDir()
	ta := startAgent(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q"}))
	pushKey(t, ta.url, "t", "", `{"n":1}`)
	var got []pulled
	waitFor(t, "a message", func() bool {
		got = append(got, qcall(t, ta.url, "q", "pull", `{"max":10}`).Messages...)
		return len(got) == 1
	})
	rc := got[0].Receipt
	r := qcall(t, ta.url, "q", "ack", map[string]any{"receipts": []string{rc, rc}})
	if r.status != 200 || r.Acked != 1 {
		t.Fatalf("ack [r, r]: %+v", r)
	}
	for _, s := range r.Stale {
		if s.Reason != "already_done" {
			t.Errorf("the repeated receipt of a message this very call acknowledged is listed as %q, want already_done", s.Reason)
		}
	}
	// The same ack once more: already_done, as the README says.
	r = qcall(t, ta.url, "q", "ack", map[string]any{"receipts": []string{rc}})
	if len(r.Stale) != 1 || r.Stale[0].Reason != "already_done" {
		t.Fatalf("the ack repeated: %+v", r)
	}
}

// A message acknowledged while an earlier one is still leased (ahead of
// the queue's cursor) reads delivered after a restart, also while the
// queue has not read it again: behind 32 MiB of unacknowledged messages
// the reader waits at its cap until consumers acknowledge those. The ack
// is in the queue log (restoredAcked), which seqState and findLocked
// consult; before, it read pending, however long, and its old receipt
// was lease_lost.
//
// Layout: 61 messages of ~545 kB pushed one at a time (read one per Read,
// 33.2 MB held, under the 32 MiB cap), then the 62nd big one and a small X
// in one push: one Read takes both (33.8 MB > cap: the reader stops). X is
// leased and acknowledged. After the restart the reader reads the big
// ones two per Read (the 1 MiB read budget), passes the cap with the 62nd
// and stops before X.
func TestQueueAckedAheadReadsDeliveredAfterRestart(t *testing.T) {
	dir := t.TempDir()
	so := spool.Options{MaxBytes: 256 << 20, SegmentBytes: 64 << 20}
	opts := func(d string) Options {
		return withQueues(t, d, Options{MaxInflightBytes: 256 << 20}, QueueSpec{Name: "q", Visibility: time.Hour})
	}
	ta := startAgentSpool(t, dir, opts(dir), so)
	q := ta.a.queues[0]
	big := func(i int) string { return fmt.Sprintf(`"%02d%s"`, i, strings.Repeat("x", 544_900)) }
	for i := range 61 {
		pushKey(t, ta.url, "t", "", big(i))
		waitFor(t, "the big message read", func() bool { r, _ := q.counts(); return r == i+1 })
	}
	r := do(t, "POST", ta.url+"/v1/topics/t", "application/x-ndjson", []byte(big(61)+"\n"+`"X"`+"\n"), nil)
	if r.status != 202 || len(r.ids) != 2 {
		t.Fatalf("push: %d %s", r.status, r.code)
	}
	x := r.ids[1]
	waitFor(t, "the last two read in one go", func() bool { r, _ := q.counts(); return r == 63 })

	var got []pulled
	waitFor(t, "every message leased", func() bool {
		got = append(got, qcall(t, ta.url, "q", "pull", `{"max":1000}`).Messages...)
		return len(got) == 63
	})
	var rx string
	for _, m := range got {
		if m.ID == x {
			rx = m.Receipt
		}
	}
	if a := qcall(t, ta.url, "q", "ack", map[string]any{"receipts": []string{rx}}); a.status != 200 || a.Acked != 1 {
		t.Fatalf("ack X: %+v", a)
	}
	if st := getStatus(t, ta, x); st.Sinks["q"].Status != "delivered" {
		t.Fatalf("X acknowledged: %+v", st)
	}
	ta.stop(t)

	ta = startAgentSpool(t, dir, opts(dir), so)
	q = ta.a.queues[0]
	// The reader stops at the cap: the 62 big messages are back in memory.
	waitFor(t, "the big messages read again", func() bool { r, _ := q.counts(); return r == 62 })
	time.Sleep(300 * time.Millisecond) // and reads no further
	if st := getStatus(t, ta, x); st.Sinks["q"].Status != "delivered" {
		ready, _ := q.counts()
		t.Fatalf("after a restart, X (acknowledged, in the queue log) reads %q (%+v), want delivered (queue holds %d messages in front of it)",
			st.Sinks["q"].Status, st, ready)
	}
	if a := qcall(t, ta.url, "q", "ack", map[string]any{"receipts": []string{rx}}); len(a.Stale) != 1 || a.Stale[0].Reason != "already_done" {
		t.Fatalf("X's receipt from before the restart: %+v, want stale already_done", a)
	}
}

// Guarantee 3 at the edge of a lease: consumers ack or extend right around
// the moment their 1 s leases expire (the maintenance tick runs every
// 50 ms), while other consumers pull. Whatever wins, an ack answered as
// taking effect means the message is never handed out again (nor was it
// handed to anyone else meanwhile: a later attempt exists only if the
// ack was stale), at most one ack per message takes effect, and a
// successful extend (2 s) means nobody else gets the message before 2 s
// after the extend was sent.
func TestQueueAckAndExtendRaceLeaseExpiry(t *testing.T) {
	dir := t.TempDir()
	ta := startAgent(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q", Visibility: time.Second}))
	const n = 120
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"i":%d}`+"\n", i)
	}
	if r := do(t, "POST", ta.url+"/v1/topics/t", "application/x-ndjson", []byte(b.String()), nil); r.status != 202 {
		t.Fatalf("push: %d", r.status)
	}
	type delivery struct {
		attempt int
		at      time.Time // reply received
	}
	type extension struct {
		attempt int
		sent    time.Time
	}
	var mu sync.Mutex
	deliveries := map[string][]delivery{}
	ackedAttempt := map[string][]int{} // attempts whose ack took effect
	extended := map[string][]extension{}
	done := 0
	stop := time.Now().Add(25 * time.Second)
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for time.Now().Before(stop) {
				mu.Lock()
				finished := done >= n
				mu.Unlock()
				if finished {
					return
				}
				r := qcall(t, ta.url, "q", "pull", `{"max":10,"wait":"200ms","visibility":"1s"}`)
				now := time.Now()
				mu.Lock()
				for _, m := range r.Messages {
					deliveries[m.ID] = append(deliveries[m.ID], delivery{m.Attempt, now})
				}
				mu.Unlock()
				if len(r.Messages) == 0 {
					continue
				}
				time.Sleep(time.Duration(900+rng.IntN(250)) * time.Millisecond)
				for _, m := range r.Messages {
					if rng.IntN(2) == 0 {
						sent := time.Now()
						e := qcall(t, ta.url, "q", "extend", map[string]any{"receipts": []string{m.Receipt}, "visibility": "2s"})
						if e.Extended == 1 {
							mu.Lock()
							extended[m.ID] = append(extended[m.ID], extension{m.Attempt, sent})
							mu.Unlock()
						}
					}
					a := qcall(t, ta.url, "q", "ack", map[string]any{"receipts": []string{m.Receipt}})
					if a.status != 200 {
						t.Errorf("ack: %+v", a)
						return
					}
					if a.Acked == 1 {
						mu.Lock()
						ackedAttempt[m.ID] = append(ackedAttempt[m.ID], m.Attempt)
						done++
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	// Anything handed out after the last ack would show in a final pull.
	for _, m := range qcall(t, ta.url, "q", "pull", `{"max":1000,"wait":"1500ms","visibility":"1m"}`).Messages {
		deliveries[m.ID] = append(deliveries[m.ID], delivery{m.Attempt, time.Now()})
	}
	redelivered, exts := 0, 0
	for _, ds := range deliveries {
		redelivered += len(ds) - 1
	}
	for _, es := range extended {
		exts += len(es)
	}
	t.Logf("%d of %d messages acknowledged, %d redeliveries, %d extends took effect", done, n, redelivered, exts)
	for id, as := range ackedAttempt {
		if len(as) > 1 {
			t.Errorf("%s: acks of attempts %v all took effect", id, as)
		}
		for _, d := range deliveries[id] {
			if d.attempt > as[0] {
				t.Errorf("%s: the ack of attempt %d took effect, yet attempt %d was handed out", id, as[0], d.attempt)
			}
		}
	}
	for id, es := range extended {
		for _, e := range es {
			for _, d := range deliveries[id] {
				if d.attempt > e.attempt && d.at.Before(e.sent.Add(2*time.Second)) {
					t.Errorf("%s: attempt %d's lease was extended by 2s at %s, yet attempt %d was handed out %s after the extend was sent",
						id, e.attempt, e.sent.Format(time.StampMilli), d.attempt, d.at.Sub(e.sent))
				}
			}
		}
	}
}
