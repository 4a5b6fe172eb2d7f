package agent

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// Each message is read by the queue in its own Read, so that the next
// Read overwrites the reader's buffer where the previous record was; then
// the messages are dead-lettered (max_attempts, expired) and the dead
// letters must carry each message's own bytes, key and headers; after a
// restart the survivors come back byte for byte, each once.
func TestQueueDeadLettersAndRestartAfterBufferReuse(t *testing.T) {
	dir := t.TempDir()
	specs := []QueueSpec{{Name: "att", MaxAttempts: 1}, {Name: "age", MaxAge: 700 * time.Millisecond}}
	ta := startAgent(t, dir, withQueues(t, dir, Options{}, specs...))
	type msg struct {
		id, key string
		value   []byte
		hdr     string
	}
	var ms []msg
	for i := 0; i < 6; i++ {
		v := bytes.Repeat([]byte{byte('A' + i)}, 200+i)
		k := fmt.Sprintf("key%c", 'a'+i)
		h := fmt.Sprintf("hv%c", 'a'+i)
		r := do(t, "POST", ta.url+"/v1/topics/t", "application/octet-stream", v, map[string]string{"Sluice-Key": k, "Sluice-Header-X": h})
		if r.status != 202 {
			t.Fatalf("push: %d %s", r.status, r.raw)
		}
		ms = append(ms, msg{id: r.ids[0], key: k, value: v, hdr: h})
		for _, q := range ta.a.queues {
			waitFor(t, "read", func() bool { r, f := q.counts(); return r+f == i+1 })
		}
	}
	// att: pull and nack the first three: dead-lettered (max_attempts).
	got := qcall(t, ta.url, "att", "pull", `{"max":3}`)
	if len(got.Messages) != 3 {
		t.Fatalf("pulled %d", len(got.Messages))
	}
	if r := qcall(t, ta.url, "att", "nack", map[string]any{"receipts": receipts(got.Messages)}); r.Nacked != 3 {
		t.Fatalf("nack: %+v", r)
	}
	// age: the first three expire in memory (dead-lettered at the next pull).
	time.Sleep(800 * time.Millisecond)
	qcall(t, ta.url, "age", "pull", `{"max":1}`)
	var dls []DeadLetter
	waitFor(t, "six dead letters", func() bool { dls = listDL(t, ta); return len(dls) >= 6 })
	check := func(d DeadLetter) {
		var one DeadLetter
		r := do(t, "GET", fmt.Sprintf("%s/v1/control/deadletters/%d", ta.url, d.DLID), "", nil, ta.ctl())
		if err := json.Unmarshal(r.raw, &one); err != nil {
			t.Fatalf("%s", r.raw)
		}
		for _, m := range ms {
			if m.id != one.ID {
				continue
			}
			v, _ := base64.StdEncoding.DecodeString(one.ValueB64)
			if !bytes.Equal(v, m.value) || one.Key == nil || *one.Key != m.key || one.Headers["X"] != m.hdr {
				t.Errorf("dead letter %s (%s/%s): value %.20q key %v headers %v; want %.20q %s %s", one.ID, one.Sink, one.Reason, v, one.Key, one.Headers, m.value, m.key, m.hdr)
			}
			return
		}
		t.Errorf("dead letter of unknown id %s", one.ID)
	}
	for _, d := range dls {
		check(d)
	}
	ta.stop(t)

	// Restart: what is left comes back byte for byte, each once.
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ta = startAgent(t, dir, withQueues(t, dir, Options{Spool: sp}, QueueSpec{Name: "att", MaxAttempts: 1}, QueueSpec{Name: "age"}))
	defer ta.stop(t)
	seen := map[string]int{}
	waitFor(t, "the rest of att", func() bool {
		for _, m := range qcall(t, ta.url, "att", "pull", `{"max":10}`).Messages {
			seen[m.ID]++
			for _, w := range ms {
				if w.id == m.ID {
					v, _ := base64.StdEncoding.DecodeString(m.ValueB64)
					if !bytes.Equal(v, w.value) || m.Key == nil || *m.Key != w.key || m.Headers["X"] != w.hdr {
						t.Errorf("after restart %s: %.20q %v %v", m.ID, v, m.Key, m.Headers)
					}
				}
			}
		}
		return len(seen) >= 3
	})
	time.Sleep(200 * time.Millisecond)
	for _, m := range qcall(t, ta.url, "att", "pull", `{"max":10}`).Messages {
		seen[m.ID]++
	}
	for _, m := range ms[3:] {
		if seen[m.id] != 1 {
			t.Errorf("%s pulled %d times after the restart", m.id, seen[m.id])
		}
	}
	for _, m := range ms[:3] {
		if seen[m.id] != 0 {
			t.Errorf("dead-lettered %s came back", m.id)
		}
	}
}

// The pooled HMACs: receipts of queues with another key, or the same key
// and another name, never verify; under concurrent use every MAC equals a
// fresh HMAC's.
func TestQueueReceiptMACPoolPerQueue(t *testing.T) {
	dir := t.TempDir()
	open := func(sub, name string) *queueLog {
		sp, err := spool.Open(filepath.Join(dir, sub), spool.Options{Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		l, _, err := openQueueLog(sp, name, 0, ^uint32(0), func(uint64) bool { return false })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.close() })
		return l
	}
	a, b := open("a", "jobs"), open("b", "jobs") // another key, same name
	c := &queueLog{name: "other", key: a.key}    // same key, another name
	logs := []*queueLog{a, b, c}
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 3000; i++ {
				own := logs[(w+i)%3]
				r := own.receipt(uint32(i), uint64(i*7+w), uint32(w), uint64(i))
				raw, _ := base64.RawURLEncoding.DecodeString(r)
				body := raw[:len(raw)-receiptMACBytes]
				h := hmac.New(sha256.New, own.key)
				h.Write([]byte(own.name))
				h.Write([]byte{0})
				h.Write(body)
				if !bytes.Equal(h.Sum(nil)[:receiptMACBytes], raw[len(raw)-receiptMACBytes:]) {
					errs <- "MAC differs from a fresh HMAC's"
					return
				}
				for _, l := range logs {
					p, ok := l.parseReceipt(r)
					if ok != (l == own) || (ok && (p.seq != uint64(i*7+w) || p.gen != uint64(i))) {
						errs <- fmt.Sprintf("receipt of %s/%p parsed by %s/%p: %v %+v", own.name, own, l.name, l, ok, p)
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
