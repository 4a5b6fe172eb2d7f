package agent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

type pulledMsg struct {
	ID         string            `json:"id"`
	Topic      string            `json:"topic"`
	Key        *string           `json:"key"`
	KeyB64     *string           `json:"key_b64"`
	Value      json.RawMessage   `json:"value"`
	ValueB64   *string           `json:"value_b64"`
	Headers    map[string]string `json:"headers"`
	HeadersB64 map[string]string `json:"headers_b64"`
	Receipt    string            `json:"receipt"`
	Attempt    int               `json:"attempt"`
	PushedAt   string            `json:"pushed_at"`
}

type qrWant struct {
	topic   string
	key     *string
	value   []byte
	headers map[string]string
}

func qrPull(t *testing.T, url, q, body string) ([]pulledMsg, []byte) {
	resp, err := http.Post(url+"/v1/queues/"+q+"/pull", "application/json", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return nil, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Errorf("pull: %d %s", resp.StatusCode, raw)
		return nil, raw
	}
	var r struct {
		Messages []pulledMsg `json:"messages"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Errorf("pull reply does not decode: %v: %.300s", err, raw)
		return nil, raw
	}
	return r.Messages, raw
}

// Messages of all shapes (JSON and binary values, escaped and non-ASCII
// keys and headers, one value large enough to push a reply past the 1 MiB
// pool bound), each read by the queue in its own Read (so the reader's
// buffer is overwritten by the next one before anything is pulled), then
// pulled by concurrent consumers while more messages keep arriving: every
// reply carries each message's own bytes, every id once, receipts unique.
func TestQueueConcurrentPullsKeepEachMessagesBytes(t *testing.T) {
	dir := t.TempDir()
	ta := startAgent(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "jobs", Visibility: time.Minute}))
	q := ta.a.queues[0]
	rnd := rand.New(rand.NewSource(1))
	want := map[string]qrWant{}
	var wmu sync.Mutex
	push := func(i int) {
		topic := fmt.Sprintf("t%d", i%3)
		var value []byte
		m := map[string]any{"topic": topic}
		switch i % 4 {
		case 0: // JSON value
			value = []byte(fmt.Sprintf(`{"n":%d,"s":"%s\"\\é\u2028"}`, i, strings.Repeat(string(rune('a'+i%26)), rnd.Intn(3000))))
			m["value"] = json.RawMessage(value)
		case 1: // binary
			value = make([]byte, rnd.Intn(5000)+1)
			rnd.Read(value)
			m["value_b64"] = base64.StdEncoding.EncodeToString(value)
		case 2: // JSON with surrounding structure, escapes in strings
			value = []byte(fmt.Sprintf(`["<>&\u0000\n\t",%d,null,true,{"k":"%s"}]`, i, strings.Repeat("\\\"", rnd.Intn(500))))
			m["value"] = json.RawMessage(value)
		case 3: // a string that is valid JSON
			value = []byte(fmt.Sprintf(`"v%d \ud83d\ude00 \u0001"`, i))
			m["value"] = json.RawMessage(value)
		}
		if i >= 7 && i <= 9 { // 900 kB binary each, pushed raw: replies past 1 MiB (base64)
			value = bytes.Repeat([]byte{0xfe, byte(i), 0}, 300_000)
			r := do(t, "POST", ta.url+"/v1/topics/"+topic, "application/octet-stream", value, nil)
			if r.status != 202 || len(r.ids) != 1 {
				t.Fatalf("push %d: %d %s", i, r.status, r.raw)
			}
			wmu.Lock()
			want[r.ids[0]] = qrWant{topic: topic, value: value}
			wmu.Unlock()
			return
		}
		var key *string
		if i%5 != 0 {
			k := fmt.Sprintf("key-%d-\"\\\x01\u00e9\U0001F600-%s", i, strings.Repeat("<", i%7))
			key = &k
			m["key"] = k
		}
		hs := map[string]string{}
		for j := 0; j < i%4; j++ {
			hs[fmt.Sprintf("h%d\"\\\n", j)] = fmt.Sprintf("v%d-%d-\u2028\x02%s", i, j, strings.Repeat("\\", j*50))
		}
		if len(hs) > 0 {
			m["headers"] = hs
		} else {
			hs = nil
		}
		var bb bytes.Buffer
		enc := json.NewEncoder(&bb)
		enc.SetEscapeHTML(false) // the value's bytes as they are
		if err := enc.Encode(map[string]any{"messages": []any{m}}); err != nil {
			t.Fatal(err)
		}
		body := bb.Bytes()
		r := do(t, "POST", ta.url+"/v1/messages", "application/json", body, nil)
		if r.status != 202 || len(r.ids) != 1 {
			t.Fatalf("push %d: %d %s", i, r.status, r.raw)
		}
		wmu.Lock()
		want[r.ids[0]] = qrWant{topic: topic, key: key, value: value, headers: hs}
		wmu.Unlock()
	}
	// One Read per message: wait until the queue holds each before the
	// next push.
	const first = 60
	for i := 0; i < first; i++ {
		push(i)
		waitFor(t, "the queue to read the message", func() bool { r, f := q.counts(); return r+f == i+1 })
	}
	const more = 120
	var pushers sync.WaitGroup
	pushers.Add(1)
	go func() {
		defer pushers.Done()
		for i := first; i < first+more; i++ {
			push(i)
		}
	}()
	var mu sync.Mutex
	seen := map[string]int{}
	receiptsSeen := map[string]bool{}
	var bad []string
	var got []pulledMsg
	maxReply := 0
	var wg sync.WaitGroup
	deadline := time.Now().Add(60 * time.Second)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for time.Now().Before(deadline) {
				mu.Lock()
				n := len(seen)
				mu.Unlock()
				if n == first+more {
					return
				}
				ms, raw := qrPull(t, ta.url, "jobs", fmt.Sprintf(`{"max":%d,"wait":"100ms"}`, 1+w%4))
				mu.Lock()
				maxReply = max(maxReply, len(raw))
				got = append(got, ms...)
				for _, m := range ms {
					seen[m.ID]++
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	pushers.Wait()
	// Each message's bytes, checked once every push is known.
	for _, m := range got {
		wnt, ok := want[m.ID]
		var why []string
		if !ok {
			why = append(why, "unknown id")
		}
		if m.Topic != wnt.topic {
			why = append(why, fmt.Sprintf("topic %q want %q", m.Topic, wnt.topic))
		}
		if (m.Key == nil) != (wnt.key == nil) || (m.Key != nil && *m.Key != *wnt.key) || m.KeyB64 != nil {
			why = append(why, fmt.Sprintf("key %v", m.Key))
		}
		var v []byte
		if m.ValueB64 != nil {
			v, _ = base64.StdEncoding.DecodeString(*m.ValueB64)
		} else {
			v = m.Value
		}
		if !bytes.Equal(v, wnt.value) {
			why = append(why, fmt.Sprintf("value %.60q want %.60q", v, wnt.value))
		}
		if fmt.Sprint(m.Headers) != fmt.Sprint(wnt.headers) || m.HeadersB64 != nil {
			why = append(why, fmt.Sprintf("headers %q want %q", m.Headers, wnt.headers))
		}
		if m.Attempt != 1 {
			why = append(why, fmt.Sprintf("attempt %d", m.Attempt))
		}
		if _, err := time.Parse(time.RFC3339Nano, m.PushedAt); err != nil {
			why = append(why, "pushed_at "+m.PushedAt)
		}
		if seen[m.ID] > 1 {
			why = append(why, "pulled twice")
		}
		if receiptsSeen[m.Receipt] {
			why = append(why, "receipt repeated")
		}
		receiptsSeen[m.Receipt] = true
		if len(why) > 0 {
			bad = append(bad, m.ID+": "+strings.Join(why, "; "))
		}
	}
	t.Logf("largest reply: %d bytes", maxReply)
	if len(seen) != first+more {
		t.Errorf("pulled %d distinct messages, want %d", len(seen), first+more)
	}
	for _, b := range bad {
		t.Error(b)
	}
}
