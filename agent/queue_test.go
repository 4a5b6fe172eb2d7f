package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// withQueues opens a log spool per queue under dir and adds the queues.
func withQueues(t *testing.T, dir string, o Options, specs ...QueueSpec) Options {
	t.Helper()
	for _, s := range specs {
		l, err := spool.Open(filepath.Join(dir, "queues", s.Name), spool.Options{Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		s.Log = l
		o.Queues = append(o.Queues, s)
	}
	return o
}

type pulled struct {
	ID       string            `json:"id"`
	Topic    string            `json:"topic"`
	Key      *string           `json:"key"`
	Value    json.RawMessage   `json:"value"`
	ValueB64 string            `json:"value_b64"`
	Headers  map[string]string `json:"headers"`
	Receipt  string            `json:"receipt"`
	Attempt  int               `json:"attempt"`
	PushedAt time.Time         `json:"pushed_at"`
}

type queueReply struct {
	status   int
	Code     string   `json:"code"`
	Messages []pulled `json:"messages"`
	Acked    int      `json:"acked"`
	Nacked   int      `json:"nacked"`
	Extended int      `json:"extended"`
	Stale    []struct {
		Receipt string `json:"receipt"`
		Reason  string `json:"reason"`
	} `json:"stale"`
}

func qcall(t *testing.T, url, queue, op string, body any) queueReply {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	case nil:
	default:
		b, _ = json.Marshal(v)
	}
	resp, err := http.Post(url+"/v1/queues/"+queue+"/"+op, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r queueReply
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("%s %s: %v: %s", queue, op, err, raw)
	}
	r.status = resp.StatusCode
	return r
}

func receipts(ms []pulled) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Receipt)
	}
	return out
}

// pushPullAck pushes n messages (body(i) each) to topic "t", pulls them
// all from queue "q" and acknowledges them; it returns their ids.
func pushPullAck(t *testing.T, ta *testAgent, n int, body func(i int) string) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		ids[i] = pushKey(t, ta.url, "t", "", body(i))
	}
	var got []pulled
	waitFor(t, fmt.Sprintf("%d messages", n), func() bool {
		got = append(got, qcall(t, ta.url, "q", "pull", `{"max":1000}`).Messages...)
		return len(got) == n
	})
	if r := qcall(t, ta.url, "q", "ack", map[string]any{"receipts": receipts(got)}); r.status != 200 || r.Acked != n {
		t.Fatalf("ack: %+v", r)
	}
	return ids
}

// checkpointThrough waits for queue "q"'s cursor to pass seq and writes
// the checkpoint of its log that maintain writes after 10 000 records.
func checkpointThrough(t *testing.T, ta *testAgent, seq uint64) {
	t.Helper()
	q := ta.a.queues[0]
	waitFor(t, "the queue's cursor past the acknowledged messages", func() bool { return q.cursor.Acked() >= seq })
	if err := q.qlog.compact(q.snapshot); err != nil {
		t.Fatal(err)
	}
}

func pushKey(t *testing.T, url, topic, key, value string) string {
	t.Helper()
	h := map[string]string{}
	if key != "" {
		h["Sluice-Key"] = key
	}
	r := do(t, "POST", url+"/v1/topics/"+topic, "", []byte(value), h)
	if r.status != 202 {
		t.Fatalf("push: %d %s", r.status, r.code)
	}
	return r.ids[0]
}

func TestQueueBadInputTouchesNothing(t *testing.T) {
	dir := t.TempDir()
	ta := startAgent(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "a"}, QueueSpec{Name: "b"}))
	pushKey(t, ta.url, "t", "", `{"n":1}`)
	var ra, rb queueReply
	waitFor(t, "messages in both queues", func() bool {
		if len(ra.Messages) == 0 {
			ra = qcall(t, ta.url, "a", "pull", nil)
		}
		if len(rb.Messages) == 0 {
			rb = qcall(t, ta.url, "b", "pull", nil)
		}
		return len(ra.Messages) == 1 && len(rb.Messages) == 1
	})
	if string(ra.Messages[0].Value) != `{"n":1}` || ra.Messages[0].Attempt != 1 || ra.Messages[0].PushedAt.IsZero() {
		t.Fatalf("pulled %+v", ra.Messages[0])
	}
	// A receipt of queue b is foreign to queue a: the whole call is
	// refused and a's own receipt stays leased.
	for _, body := range []any{
		map[string]any{"receipts": []string{ra.Messages[0].Receipt, rb.Messages[0].Receipt}},
		map[string]any{"receipts": []string{ra.Messages[0].Receipt, "not-a-receipt"}},
		map[string]any{"receipts": []string{ra.Messages[0].Receipt[:len(ra.Messages[0].Receipt)-2] + "AA"}},
		map[string]any{"receipts": []string{}},
		map[string]any{"receipts": []string{ra.Messages[0].Receipt}, "max": 3},
		`{"receipts":`,
	} {
		if r := qcall(t, ta.url, "a", "ack", body); r.status != 400 || r.Code != "bad_request" {
			t.Errorf("ack %v: %d %s", body, r.status, r.Code)
		}
	}
	for _, body := range []string{`{"max":0}`, `{"max":1001}`, `{"wait":"21s"}`, `{"wait":"-1s"}`, `{"visibility":"500ms"}`, `{"visibility":"13h"}`, `{"wait":5}`, `{"bogus":1}`} {
		if r := qcall(t, ta.url, "a", "pull", body); r.status != 400 {
			t.Errorf("pull %s: %d", body, r.status)
		}
	}
	if r := qcall(t, ta.url, "a", "nack", map[string]any{"receipts": receipts(ra.Messages), "delay": "13h"}); r.status != 400 {
		t.Errorf("nack with a long delay: %d", r.status)
	}
	if r := qcall(t, ta.url, "a", "extend", map[string]any{"receipts": receipts(ra.Messages)}); r.status != 400 {
		t.Errorf("extend without visibility: %d", r.status)
	}
	if r := qcall(t, ta.url, "nope", "pull", nil); r.status != 404 {
		t.Errorf("unknown queue: %d", r.status)
	}
	if r := qcall(t, ta.url, "a", "peek", nil); r.status != 404 {
		t.Errorf("unknown operation: %d", r.status)
	}
	if r := do(t, "GET", ta.url+"/v1/queues/a/pull", "", nil, nil); r.status != 405 {
		t.Errorf("GET pull: %d", r.status)
	}
	// Nothing above touched the lease.
	if r := qcall(t, ta.url, "a", "extend", map[string]any{"receipts": receipts(ra.Messages), "visibility": "1m"}); r.status != 200 || r.Extended != 1 {
		t.Fatalf("extend: %+v", r)
	}
	if r := qcall(t, ta.url, "a", "ack", map[string]any{"receipts": receipts(ra.Messages)}); r.status != 200 || r.Acked != 1 {
		t.Fatalf("ack: %+v", r)
	}
	// Acknowledging again is harmless and says why nothing happened.
	if r := qcall(t, ta.url, "a", "ack", map[string]any{"receipts": receipts(ra.Messages)}); r.status != 200 || r.Acked != 0 || len(r.Stale) != 1 || r.Stale[0].Reason != receiptDone {
		t.Fatalf("second ack: %+v", r)
	}
	// b's copy is in flight, a's delivered.
	st := getStatus(t, ta, ra.Messages[0].ID)
	if st.Sinks["a"].Status != "delivered" || st.Sinks["b"].Status != "in_flight" || st.Status != "in_flight" {
		t.Fatalf("status %+v", st)
	}
}

func TestQueueOrderedKeys(t *testing.T) {
	dir := t.TempDir()
	ta := startAgent(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q", Ordered: true}))
	for _, kv := range [][2]string{{"a", "a1"}, {"a", "a2"}, {"b", "b1"}, {"a", "a3"}, {"", "n1"}, {"", "n2"}} {
		pushKey(t, ta.url, "t", kv[0], `"`+kv[1]+`"`)
	}
	values := func(ms []pulled) []string {
		var out []string
		for _, m := range ms {
			out = append(out, string(m.Value))
		}
		return out
	}
	var got []pulled
	waitFor(t, "first pull", func() bool {
		got = append(got, qcall(t, ta.url, "q", "pull", `{"max":10}`).Messages...)
		return len(got) >= 4
	})
	if v := values(got); !slices.Equal(v, []string{`"a1"`, `"b1"`, `"n1"`, `"n2"`}) {
		t.Fatalf("first pull %v: want the head of each key and the unkeyed messages", v)
	}
	if r := qcall(t, ta.url, "q", "pull", `{"max":10}`); len(r.Messages) != 0 {
		t.Fatalf("a2 handed out while a1 is leased: %v", values(r.Messages))
	}
	qcall(t, ta.url, "q", "nack", map[string]any{"receipts": []string{got[1].Receipt}})
	r := qcall(t, ta.url, "q", "pull", `{"max":10}`)
	if v := values(r.Messages); !slices.Equal(v, []string{`"b1"`}) || r.Messages[0].Attempt != 2 {
		t.Fatalf("after nack of b1: %v", r.Messages)
	}
	qcall(t, ta.url, "q", "ack", map[string]any{"receipts": []string{got[0].Receipt}})
	r = qcall(t, ta.url, "q", "pull", `{"max":10}`)
	if v := values(r.Messages); !slices.Equal(v, []string{`"a2"`}) {
		t.Fatalf("after ack of a1: %v", v)
	}
}

func TestQueueStateSurvivesRestartAndCompaction(t *testing.T) {
	dir := t.TempDir()
	o := Options{}
	ta := startAgent(t, dir, withQueues(t, dir, o, QueueSpec{Name: "q", MaxAttempts: 3}))
	var ids []string
	for i := range 30 {
		ids = append(ids, pushKey(t, ta.url, "t", "", fmt.Sprint(i)))
	}
	var got []pulled
	waitFor(t, "30 messages", func() bool {
		got = append(got, qcall(t, ta.url, "q", "pull", `{"max":100}`).Messages...)
		return len(got) == 30
	})
	if r := qcall(t, ta.url, "q", "ack", map[string]any{"receipts": receipts(got[:10])}); r.Acked != 10 {
		t.Fatalf("ack: %+v", r)
	}
	// A checkpoint in the middle: the log keeps what matters and lets
	// the rest go.
	q := ta.a.queues[0]
	if err := q.qlog.compact(q.snapshot); err != nil {
		t.Fatal(err)
	}
	// Acknowledged above the lowest unacknowledged message: only the
	// queue log remembers these.
	if r := qcall(t, ta.url, "q", "ack", map[string]any{"receipts": receipts(got[15:25])}); r.Acked != 10 {
		t.Fatalf("ack: %+v", r)
	}
	ta.stop(t)
	want := append(slices.Clone(ids[10:15]), ids[25:]...)

	ta = startAgent(t, dir, withQueues(t, dir, o, QueueSpec{Name: "q", MaxAttempts: 3}))
	var again []pulled
	waitFor(t, "the 10 unacknowledged messages", func() bool {
		again = append(again, qcall(t, ta.url, "q", "pull", `{"max":100}`).Messages...)
		return len(again) >= 10
	})
	time.Sleep(50 * time.Millisecond)
	again = append(again, qcall(t, ta.url, "q", "pull", `{"max":100}`).Messages...)
	var gotIDs []string
	for _, m := range again {
		gotIDs = append(gotIDs, m.ID)
		if m.Attempt != 2 {
			t.Errorf("%s: attempt %d after a restart, want 2", m.ID, m.Attempt)
		}
	}
	if !slices.Equal(gotIDs, want) {
		t.Fatalf("after restart got %v, want %v", gotIDs, want)
	}
	// A receipt from before the restart is stale, not foreign.
	if r := qcall(t, ta.url, "q", "ack", map[string]any{"receipts": receipts(got[10:11])}); r.status != 200 || len(r.Stale) != 1 || r.Stale[0].Reason != receiptLeaseLost {
		t.Fatalf("old receipt: %+v", r)
	}
	// Third delivery is the last one: a nack now dead-letters.
	qcall(t, ta.url, "q", "nack", map[string]any{"receipts": receipts(again)})
	third := qcall(t, ta.url, "q", "pull", `{"max":100}`).Messages
	if len(third) != 10 || third[0].Attempt != 3 {
		t.Fatalf("third pull: %d messages", len(third))
	}
	qcall(t, ta.url, "q", "nack", map[string]any{"receipts": receipts(third)})
	waitFor(t, "dead letters", func() bool { return getStatus(t, ta, ids[29]).Status == "failed" })
	if st := getStatus(t, ta, ids[29]); st.Sinks["q"].Reason != "max_attempts" {
		t.Fatalf("status %+v", st)
	}
	waitFor(t, "an empty backlog", func() bool { return ta.a.queues[0].cursor.BacklogBytes() == 0 })
}

// Past MaxLongPolls waiting pulls, a pull answers at once with what is
// there instead of holding a connection; the waiting ones still get what
// is pushed.
func TestQueueLongPollsBounded(t *testing.T) {
	dir := t.TempDir()
	ta := startAgent(t, dir, withQueues(t, dir, Options{MaxLongPolls: 2}, QueueSpec{Name: "q"}))
	got := make(chan queueReply, 2)
	for range 2 {
		go func() {
			resp, err := http.Post(ta.url+"/v1/queues/q/pull", "application/json", bytes.NewReader([]byte(`{"wait":"20s"}`)))
			var r queueReply
			if err == nil {
				json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
			}
			got <- r
		}()
	}
	waitFor(t, "two waiting pulls", func() bool { return ta.a.longPolls.Load() == 2 })
	if r := qcall(t, ta.url, "q", "pull", `{"wait":"20s"}`); r.status != 200 || len(r.Messages) != 0 {
		t.Fatalf("third pull: %+v", r)
	}
	if n := ta.a.queues[0].m.pollsRefused.Get(); n != 1 {
		t.Fatalf("refused long polls: %d", n)
	}
	pushKey(t, ta.url, "t", "", "1")
	pushKey(t, ta.url, "t", "", "2")
	n := 0
	for range 2 {
		n += len((<-got).Messages)
	}
	if n != 2 {
		t.Fatalf("waiting pulls got %d messages, want 2", n)
	}
}

// TestQueueMalformedBodyTouchesNothing: "bad input 400 touching
// nothing". A body that is not one JSON document (a second document, or
// garbage after the first) is malformed, yet the decoder reads the first
// document and the call takes effect.
func TestQueueMalformedBodyTouchesNothing(t *testing.T) {
	dir := t.TempDir()
	ta := startAgent(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q"}))
	pushKey(t, ta.url, "t", "", `{"n":1}`)
	var got []pulled
	waitFor(t, "a message", func() bool {
		got = append(got, qcall(t, ta.url, "q", "pull", nil).Messages...)
		return len(got) == 1
	})
	for _, tail := range []string{` {"receipts":"oops"`, `}`, `]`, ` x`, ` {}`} {
		body := `{"receipts":["` + got[0].Receipt + `"]}` + tail
		if r := qcall(t, ta.url, "q", "ack", body); r.status != 400 {
			t.Errorf("ack with trailing %q: %d %+v, want 400", tail, r.status, r)
		}
	}
	// Nothing was changed: the lease is still the consumer's.
	if r := qcall(t, ta.url, "q", "extend", map[string]any{"receipts": receipts(got), "visibility": "1m"}); r.Extended != 1 {
		t.Fatalf("the malformed ack acknowledged the message: extend %+v", r)
	}
}
