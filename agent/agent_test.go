package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/spool"
)

// funcSink is a sink made of functions: the only kind of fake used here.
type funcSink struct {
	write func(ctx context.Context, msgs []sink.Message) error
}

func (f funcSink) Write(ctx context.Context, msgs []sink.Message) error { return f.write(ctx, msgs) }
func (f funcSink) Close(context.Context) error                          { return nil }

// memSink records what it was given; fail decides per attempt.
type memSink struct {
	mu   sync.Mutex
	got  []sink.Message
	fail func(msgs []sink.Message) error
}

func (m *memSink) sink() sink.Sink {
	return funcSink{write: func(ctx context.Context, msgs []sink.Message) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.fail != nil {
			if err := m.fail(msgs); err != nil {
				return err
			}
		}
		for _, msg := range msgs {
			msg.Key = bytes.Clone(msg.Key)
			msg.Value = bytes.Clone(msg.Value)
			m.got = append(m.got, msg)
		}
		return nil
	}}
}

func (m *memSink) messages() []sink.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]sink.Message(nil), m.got...)
}

func (m *memSink) setFail(f func(msgs []sink.Message) error) {
	m.mu.Lock()
	m.fail = f
	m.mu.Unlock()
}

// stuckOn makes every write of topic fail transiently (a stuck topic,
// which holds the sink's cursor below what other topics deliver); the
// channel is closed at the first such write.
func (m *memSink) stuckOn(topic string) <-chan struct{} {
	started := make(chan struct{})
	var once sync.Once
	m.setFail(func(msgs []sink.Message) error {
		if msgs[0].Topic == topic {
			once.Do(func() { close(started) })
			return errTransient
		}
		return nil
	})
	return started
}

// ids lists the ids of what was delivered, in order.
func (m *memSink) ids() []string {
	var ids []string
	for _, msg := range m.messages() {
		ids = append(ids, msg.ID)
	}
	return ids
}

type testAgent struct {
	a      *Agent
	url    string
	admin  string
	sp     *spool.Spool
	cancel context.CancelFunc
	done   chan error
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startAgent(t *testing.T, dir string, o Options) *testAgent {
	t.Helper()
	// Spools are opened here unless the test passed its own.
	if o.Spool == nil {
		sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{Logger: quiet(), MaxBytes: max(o.MaxInflightBytes, 64<<20)})
		if err != nil {
			t.Fatal(err)
		}
		o.Spool = sp
	}
	if o.DeadLetter == nil {
		dl, err := spool.Open(filepath.Join(dir, "deadletter"), spool.Options{Logger: quiet(), FullPolicy: spool.DropOldest})
		if err != nil {
			t.Fatal(err)
		}
		o.DeadLetter = dl
	}
	sp := o.Spool
	o.Listen, o.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	if o.DrainTimeout == 0 {
		o.DrainTimeout = 300 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = quiet()
	}
	for i := range o.Sinks {
		if o.Sinks[i].RetryMin == 0 {
			o.Sinks[i].RetryMin = time.Millisecond
			o.Sinks[i].RetryMax = 20 * time.Millisecond
		}
	}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta := &testAgent{a: a, sp: sp, cancel: cancel, done: make(chan error, 1)}
	go func() { ta.done <- a.Run(ctx) }()
	select {
	case <-a.Ready():
	case err := <-ta.done:
		t.Fatalf("agent stopped: %v", err)
	}
	in, ad := a.Addrs()
	ta.url, ta.admin = "http://"+in, "http://"+ad
	t.Cleanup(func() { ta.stop(t) })
	return ta
}

// startAgentSpool is startAgent with the main spool's options given (a
// small cap, small segments).
func startAgentSpool(t *testing.T, dir string, o Options, so spool.Options) *testAgent {
	t.Helper()
	so.Logger = quiet()
	sp, err := spool.Open(filepath.Join(dir, "spool"), so)
	if err != nil {
		t.Fatal(err)
	}
	o.Spool = sp
	return startAgent(t, dir, o)
}

func (ta *testAgent) stop(t *testing.T) {
	ta.cancel()
	select {
	case err := <-ta.done:
		if err != nil {
			t.Errorf("agent run: %v", err)
		}
		ta.done <- nil
	case <-time.After(30 * time.Second):
		t.Error("agent did not stop")
	}
}

type reply struct {
	status  int
	code    string
	ids     []string
	ackStat string
	header  http.Header
	raw     []byte
}

// ctl is the header a control call needs (control.go).
func (ta *testAgent) ctl() map[string]string {
	return map[string]string{ControlTokenHeader: ta.a.ControlToken()}
}

func do(t *testing.T, method, url, ctype string, body []byte, hdr map[string]string) reply {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var v struct {
		Code   string   `json:"code"`
		IDs    []string `json:"ids"`
		Status string   `json:"status"`
	}
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &v)
	return reply{status: resp.StatusCode, code: v.Code, ids: v.IDs, ackStat: v.Status, header: resp.Header, raw: b}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func getStatus(t *testing.T, ta *testAgent, id string) Status {
	t.Helper()
	resp, err := http.Get(ta.url + "/v1/messages/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestPushEveryEndpointKeepsBytes(t *testing.T) {
	mem := &memSink{}
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	r1 := do(t, "POST", ta.url+"/v1/topics/orders", "application/octet-stream", []byte("\x00raw\xffbytes"),
		map[string]string{"Sluice-Key": "k1", "Sluice-Header-Trace-Id": "abc"})
	r2 := do(t, "POST", ta.url+"/v1/topics/orders", "application/x-ndjson", []byte("l1\r\n\nl2\n"), nil)
	batch := `{"messages":[{"topic":"t","key":"k","value":{"b":1,"a":[1.50,"\u00e9"]},"headers":{"h":"v"}},` +
		`{"topic":"t","value_b64":"AAEC","id":"upstream-7"},{"topic":"t","value":"str"}]}`
	r3 := do(t, "POST", ta.url+"/v1/messages", "application/json", []byte(batch), nil)
	for _, r := range []reply{r1, r2, r3} {
		if r.status != 202 {
			t.Fatalf("push: %+v", r)
		}
	}
	ids := append(append(append([]string{}, r1.ids...), r2.ids...), r3.ids...)
	if len(ids) != 6 || ids[4] != "upstream-7" {
		t.Fatalf("ids %v", ids)
	}
	waitFor(t, "delivery", func() bool { return len(mem.messages()) == 6 })
	// Topics are separate lanes: only within a topic is the order fixed.
	got := mem.messages()
	last := map[string]int{}
	for _, m := range got {
		i := slices.Index(ids, m.ID)
		if p, ok := last[m.Topic]; ok && i < p {
			t.Fatalf("topic %s delivered out of order: %v", m.Topic, got)
		}
		last[m.Topic] = i
	}
	slices.SortStableFunc(got, func(a, b sink.Message) int {
		return slices.Index(ids, a.ID) - slices.Index(ids, b.ID)
	})
	want := []struct {
		topic, key, value string
	}{
		{"orders", "k1", "\x00raw\xffbytes"}, {"orders", "", "l1"}, {"orders", "", "l2"},
		{"t", "k", `{"b":1,"a":[1.50,"\u00e9"]}`}, {"t", "", "\x00\x01\x02"}, {"t", "", `"str"`},
	}
	for i, w := range want {
		g := got[i]
		if g.ID != ids[i] || g.Topic != w.topic || string(g.Key) != w.key || string(g.Value) != w.value {
			t.Fatalf("message %d: got id=%s topic=%s key=%q value=%q, want %+v", i, g.ID, g.Topic, g.Key, g.Value, w)
		}
	}
	if h := got[0].Headers; len(h) != 1 || h[0].Key != "Trace-Id" || string(h[0].Value) != "abc" {
		t.Fatalf("headers %+v", h)
	}
	if got[1].Key != nil {
		t.Fatalf("keyless message got key %q", got[1].Key)
	}
	for _, id := range ids {
		if st := getStatus(t, ta, id); st.Status != "delivered" || st.Sinks["mem"].Status != "delivered" {
			t.Fatalf("status of %s: %+v", id, st)
		}
	}
	if st := getStatus(t, ta, "nope-1-1"); st.Status != "unknown" {
		t.Fatalf("unknown id: %+v", st)
	}
}

// TestMalformedRequests: each hostile or malformed request gets its exact
// status and code, and nothing of it is spooled.
func TestMalformedRequests(t *testing.T) {
	mem := &memSink{}
	ta := startAgent(t, t.TempDir(), Options{
		MaxMessageBytes: 1024, MaxRequestBytes: 8192, MaxHeaders: 20,
		Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink(), Topics: []string{"ok", "ok.*"}}},
	})
	big := bytes.Repeat([]byte("x"), 1025)
	manyHeaders := map[string]string{}
	for i := 0; i < 30; i++ {
		manyHeaders[fmt.Sprintf("X-H%d", i)] = "v"
	}
	j := "application/json"
	cases := []struct {
		name, method, path, ctype string
		body                      []byte
		hdr                       map[string]string
		status                    int
		code                      string
	}{
		{"topic with space", "POST", "/v1/topics/bad%20topic", "", []byte("x"), nil, 400, "bad_topic"},
		{"topic too long", "POST", "/v1/topics/" + strings.Repeat("a", 250), "", []byte("x"), nil, 400, "bad_topic"},
		{"topic dot", "POST", "/v1/topics/.", "", []byte("x"), nil, 400, "bad_topic"},
		{"topic utf8", "POST", "/v1/topics/caf%C3%A9", "", []byte("x"), nil, 400, "bad_topic"},
		{"empty topic", "POST", "/v1/topics/", "", []byte("x"), nil, 400, "bad_topic"},
		{"no route", "POST", "/v1/topics/other", "", []byte("x"), nil, 400, "no_route"},
		{"message too large", "POST", "/v1/topics/ok", "", big, nil, 413, "too_large"},
		{"request too large", "POST", "/v1/topics/ok", "application/x-ndjson", bytes.Repeat([]byte("a\n"), 5000), nil, 413, "too_large"},
		{"ndjson line too large", "POST", "/v1/topics/ok", "application/x-ndjson", append([]byte("a\n"), big...), nil, 413, "too_large"},
		{"ndjson empty", "POST", "/v1/topics/ok", "application/x-ndjson", []byte("\n\n"), nil, 400, "bad_request"},
		{"batch not json", "POST", "/v1/messages", j, []byte("{"), nil, 400, "bad_request"},
		{"batch empty", "POST", "/v1/messages", j, []byte(`{"messages":[]}`), nil, 400, "bad_request"},
		{"batch unknown field", "POST", "/v1/messages", j, []byte(`{"messages":[{"topic":"ok","value":1,"valu":2}]}`), nil, 400, "bad_request"},
		{"batch no value", "POST", "/v1/messages", j, []byte(`{"messages":[{"topic":"ok"}]}`), nil, 400, "bad_request"},
		{"batch both values", "POST", "/v1/messages", j, []byte(`{"messages":[{"topic":"ok","value":1,"value_b64":"AA=="}]}`), nil, 400, "bad_request"},
		{"batch bad base64", "POST", "/v1/messages", j, []byte(`{"messages":[{"topic":"ok","value_b64":"!!"}]}`), nil, 400, "bad_request"},
		{"batch bad topic in second", "POST", "/v1/messages", j, []byte(`{"messages":[{"topic":"ok","value":1},{"topic":"b d","value":1}]}`), nil, 400, "bad_topic"},
		{"batch one unroutable", "POST", "/v1/messages", j, []byte(`{"messages":[{"topic":"ok","value":1},{"topic":"zzz","value":1}]}`), nil, 400, "no_route"},
		{"batch trailing data", "POST", "/v1/messages", j, []byte(`{"messages":[{"topic":"ok","value":1}]} x`), nil, 400, "bad_request"},
		{"batch trailing brace", "POST", "/v1/messages", j, []byte(`{"messages":[{"topic":"ok","value":1}]}}`), nil, 400, "bad_request"},
		{"batch trailing bracket", "POST", "/v1/messages", j, []byte(`{"messages":[{"topic":"ok","value":1}]}]`), nil, 400, "bad_request"},
		{"batch key not string", "POST", "/v1/messages", j, []byte(`{"messages":[{"topic":"ok","value":1,"key":5}]}`), nil, 400, "bad_request"},
		{"batch sluice-id header", "POST", "/v1/messages", j, []byte(`{"messages":[{"topic":"ok","value":1,"headers":{"sluice-id":"x"}}]}`), nil, 400, "bad_request"},
		{"batch key not UTF-8", "POST", "/v1/messages", j, []byte("{\"messages\":[{\"topic\":\"ok\",\"value\":1,\"key\":\"k\xff\"}]}"), nil, 400, "bad_request"},
		{"batch bad id", "POST", "/v1/messages", j, []byte(`{"messages":[{"topic":"ok","value":1,"id":"has space"}]}`), nil, 400, "bad_request"},
		{"batch deep nesting", "POST", "/v1/messages", j, []byte(`{"messages":[{"topic":"ok","value":` + strings.Repeat("[", 4000) + strings.Repeat("]", 4000) + `}]}`), nil, 413, "too_large"},
		{"batch wrong content type", "POST", "/v1/messages", "text/plain", []byte(`{"messages":[{"topic":"ok","value":1}]}`), nil, 415, "unsupported_media_type"},
		{"sluice-id header on topic push", "POST", "/v1/topics/ok", "", []byte("x"), map[string]string{"Sluice-Header-Sluice-Id": "x"}, 400, "bad_request"},
		{"bad Sluice-Ack", "POST", "/v1/topics/ok", "", []byte("x"), map[string]string{"Sluice-Ack": "maybe"}, 400, "bad_request"},
		{"bad Sluice-Timeout", "POST", "/v1/topics/ok", "", []byte("x"), map[string]string{"Sluice-Ack": "delivered", "Sluice-Timeout": "soon"}, 400, "bad_request"},
		{"too many headers", "POST", "/v1/topics/ok", "", []byte("x"), manyHeaders, 431, "headers_too_large"},
		{"GET on push", "GET", "/v1/topics/ok", "", nil, nil, 405, "method_not_allowed"},
		{"POST on status", "POST", "/v1/messages/abc", "", nil, nil, 405, "method_not_allowed"},
		{"unknown path", "POST", "/v2/topics/ok", "", []byte("x"), nil, 404, "not_found"},
		{"control unknown op", "POST", "/v1/control/explode", "", nil, map[string]string{ControlTokenHeader: ta.a.ControlToken()}, 404, "not_found"},
		{"control without control token", "POST", "/v1/control/drain", "", nil, nil, 401, "unauthorized"},
		{"control with a wrong control token", "POST", "/v1/control/deadletters/purge", "", nil, map[string]string{ControlTokenHeader: "x" + ta.a.ControlToken()}, 401, "unauthorized"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := do(t, c.method, ta.url+c.path, c.ctype, c.body, c.hdr)
			if r.status != c.status || r.code != c.code {
				t.Fatalf("got %d %q, want %d %q", r.status, r.code, c.status, c.code)
			}
		})
	}
	if last := ta.sp.LastSeq(); last != 0 {
		t.Fatalf("malformed requests spooled %d records", last)
	}
}

func TestAuthToken(t *testing.T) {
	mem := &memSink{}
	ta := startAgent(t, t.TempDir(), Options{AuthToken: "s3cret", Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	if r := do(t, "POST", ta.url+"/v1/topics/a", "", []byte("x"), nil); r.status != 401 || r.code != "unauthorized" {
		t.Fatalf("no token: %+v", r)
	}
	if r := do(t, "POST", ta.url+"/v1/topics/a", "", []byte("x"), map[string]string{"Authorization": "Bearer wrong"}); r.status != 401 {
		t.Fatalf("wrong token: %+v", r)
	}
	if r := do(t, "POST", ta.url+"/v1/topics/a", "", []byte("x"), map[string]string{"Authorization": "Bearer s3cret"}); r.status != 202 {
		t.Fatalf("right token: %+v", r)
	}
	if ta.sp.LastSeq() != 1 {
		t.Fatalf("spooled %d", ta.sp.LastSeq())
	}
}

var errTransient = errors.New("upstream unavailable")

func TestStuckTopicDoesNotBlockAnother(t *testing.T) {
	mem := &memSink{}
	mem.setFail(func(msgs []sink.Message) error {
		if msgs[0].Topic == "stuck" {
			return sink.WithReason("leader", errTransient)
		}
		return nil
	})
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	stuck := do(t, "POST", ta.url+"/v1/topics/stuck", "", []byte("s"), nil)
	var okIDs []string
	for i := 0; i < 20; i++ {
		okIDs = append(okIDs, do(t, "POST", ta.url+"/v1/topics/flowing", "", []byte(fmt.Sprint(i)), nil).ids...)
	}
	waitFor(t, "the flowing topic", func() bool { return len(mem.messages()) == 20 })
	for i, m := range mem.messages() {
		if m.Topic != "flowing" || string(m.Value) != fmt.Sprint(i) {
			t.Fatalf("message %d: %s %q", i, m.Topic, m.Value)
		}
	}
	// The cursor waits at the stuck record: both stay pending until it goes.
	if st := getStatus(t, ta, stuck.ids[0]); st.Status != "pending" {
		t.Fatalf("stuck: %+v", st)
	}
	if b := ta.a.fwds[0].cursor.Backlog(); b.Records != 21 {
		t.Fatalf("cursor moved past the stuck record: %+v", b)
	}
	mem.setFail(nil)
	waitFor(t, "the stuck topic", func() bool { return len(mem.messages()) == 21 })
	waitFor(t, "the cursor", func() bool { return ta.a.fwds[0].cursor.BacklogBytes() == 0 })
	if st := getStatus(t, ta, okIDs[19]); st.Status != "delivered" {
		t.Fatalf("status %+v", st)
	}
}

// A lane whose batch is retried is held: what it had queued and what it
// queues meanwhile is copied out of the read buffers. Once the sink takes
// the topic again every message arrives whole (value, key, headers), in
// order, and the lane is no longer held.
func TestHeldLaneDeliversWholeMessagesInOrder(t *testing.T) {
	mem := &memSink{}
	mem.setFail(func(msgs []sink.Message) error {
		if msgs[0].Topic == "held" {
			return sink.WithReason("leader", errTransient)
		}
		return nil
	})
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink(), BatchMessages: 10}}})
	push := func(from, n int) {
		var body []byte
		for i := from; i < from+n; i++ {
			body = append(body, fmt.Sprintf("held-%03d\n", i)...)
		}
		do(t, "POST", ta.url+"/v1/topics/held", "application/x-ndjson", body, map[string]string{"Sluice-Key": "k", "Sluice-Header-Trace": "t1"})
		do(t, "POST", ta.url+"/v1/topics/flowing", "", []byte("f"), nil)
	}
	push(0, 30)
	f := ta.a.fwds[0]
	isHeld := func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		l := f.lanes["held"]
		return l != nil && l.stuck
	}
	waitFor(t, "the lane held", isHeld)
	push(30, 30) // queued while held
	waitFor(t, "the flowing topic", func() bool { return len(mem.messages()) == 2 })
	mem.setFail(nil)
	waitFor(t, "the held topic", func() bool { return len(mem.messages()) == 62 })
	n := 0
	for _, m := range mem.messages() {
		if m.Topic != "held" {
			continue
		}
		if want := fmt.Sprintf("held-%03d", n); string(m.Value) != want || string(m.Key) != "k" ||
			len(m.Headers) < 1 || m.Headers[0].Key != "Trace" || string(m.Headers[0].Value) != "t1" {
			t.Fatalf("message %d: %q key %q headers %+v, want %q", n, m.Value, m.Key, m.Headers, want)
		}
		n++
	}
	if n != 60 {
		t.Fatalf("%d held-topic messages delivered, want 60", n)
	}
	waitFor(t, "the lane released", func() bool { return !isHeld() })
}

// TestPermanentErrorIsolatesOneMessage: one bad message in a batch is split
// out and dead-lettered; its batch-mates are delivered, in order.
func TestPermanentErrorIsolatesOneMessage(t *testing.T) {
	mem := &memSink{}
	var attempts int
	mem.setFail(func(msgs []sink.Message) error {
		attempts++
		for _, m := range msgs {
			if string(m.Value) == "poison" {
				return sink.Permanent(sink.WithReason("too_large", errors.New("MESSAGE_TOO_LARGE")))
			}
		}
		return nil
	})
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink(), Linger: 50 * time.Millisecond}}})
	var body []byte
	for i := 0; i < 50; i++ {
		v := fmt.Sprintf("m%02d", i)
		if i == 31 {
			v = "poison"
		}
		body = append(body, v+"\n"...)
	}
	r := do(t, "POST", ta.url+"/v1/topics/t", "application/x-ndjson", body, nil)
	waitFor(t, "delivery", func() bool { return ta.a.fwds[0].cursor.BacklogBytes() == 0 })
	got := mem.messages()
	if len(got) != 49 {
		t.Fatalf("delivered %d", len(got))
	}
	for i, m := range got {
		want := i
		if i >= 31 {
			want = i + 1
		}
		if string(m.Value) != fmt.Sprintf("m%02d", want) {
			t.Fatalf("order broken at %d: %q", i, m.Value)
		}
	}
	st := getStatus(t, ta, r.ids[31])
	if st.Status != "failed" || st.Sinks["mem"].Reason != "too_large" || !strings.Contains(st.Sinks["mem"].Error, "MESSAGE_TOO_LARGE") {
		t.Fatalf("poison status %+v", st)
	}
	if getStatus(t, ta, r.ids[30]).Status != "delivered" {
		t.Fatal("batch-mate not delivered")
	}
	if attempts > 20 {
		t.Fatalf("%d attempts to isolate one message in 50", attempts)
	}
}

func TestBrokenSinkDoesNotStopAnother(t *testing.T) {
	good, bad := &memSink{}, &memSink{}
	bad.setFail(func([]sink.Message) error { return errTransient })
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{
		{Name: "good", Sink: good.sink()}, {Name: "bad", Sink: bad.sink()},
	}})
	var ids []string
	for i := 0; i < 30; i++ {
		ids = append(ids, do(t, "POST", ta.url+"/v1/topics/t", "", []byte(fmt.Sprint(i)), nil).ids...)
	}
	waitFor(t, "the good sink", func() bool { return len(good.messages()) == 30 })
	st := getStatus(t, ta, ids[0])
	if st.Status != "pending" || st.Sinks["good"].Status != "delivered" || st.Sinks["bad"].Status != "pending" {
		t.Fatalf("status %+v", st)
	}
	if !ta.a.fwds[1].failing.Load() {
		t.Fatal("failing sink not reported")
	}
	resp, _ := http.Get(ta.admin + "/metrics")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(b, []byte(`sluice_sink_failing{sink="bad"} 1`)) || !bytes.Contains(b, []byte(`sluice_sink_retries_total{sink="bad",reason="other"}`)) {
		t.Fatalf("metrics:\n%s", b)
	}
	// Health does not depend on sinks.
	if resp, _ := http.Get(ta.admin + "/readyz"); resp.StatusCode != 200 {
		t.Fatalf("readyz %d with a dead sink", resp.StatusCode)
	}
}

func TestAckDeliveredWaitsAndTimesOut(t *testing.T) {
	good, bad := &memSink{}, &memSink{}
	bad.setFail(func([]sink.Message) error { return errTransient })
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{
		{Name: "good", Sink: good.sink(), Topics: []string{"g"}},
		{Name: "bad", Sink: bad.sink(), Topics: []string{"b"}},
	}})
	r := do(t, "POST", ta.url+"/v1/topics/g", "", []byte("x"), map[string]string{"Sluice-Ack": "delivered"})
	if r.status != 202 || r.ackStat != "delivered" || len(good.messages()) != 1 {
		t.Fatalf("delivered ack: %+v", r)
	}
	r = do(t, "POST", ta.url+"/v1/topics/b", "", []byte("x"), map[string]string{"Sluice-Ack": "delivered", "Sluice-Timeout": "0.2"})
	if r.status != 202 || r.ackStat != "pending" || len(r.ids) != 1 {
		t.Fatalf("timed-out ack: %+v", r)
	}
}

func TestMaxAgeDeadLetters(t *testing.T) {
	mem := &memSink{}
	mem.setFail(func([]sink.Message) error { return errTransient })
	dir := t.TempDir()
	ta := startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("old"), nil)
	ta.stop(t)
	mem.setFail(nil)
	time.Sleep(30 * time.Millisecond)
	ta = startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink(), MaxAge: 10 * time.Millisecond}}})
	waitFor(t, "expiry", func() bool { return getStatus(t, ta, r.ids[0]).Status == "failed" })
	if st := getStatus(t, ta, r.ids[0]); st.Sinks["mem"].Reason != "expired" || len(mem.messages()) != 0 {
		t.Fatalf("status %+v, delivered %d", st, len(mem.messages()))
	}
}

func TestStatusAcrossRestart(t *testing.T) {
	mem := &memSink{}
	dir := t.TempDir()
	ta := startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	delivered := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("a"), nil).ids[0]
	waitFor(t, "delivery", func() bool { return len(mem.messages()) == 1 })
	mem.setFail(func(msgs []sink.Message) error {
		if string(msgs[0].Value) == "poison" {
			return sink.Permanent(errors.New("invalid record"))
		}
		return errTransient
	})
	failed := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("poison"), nil).ids[0]
	waitFor(t, "dead letter", func() bool { return getStatus(t, ta, failed).Status == "failed" })
	pending := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("b"), nil).ids[0]
	ta.stop(t)

	ta = startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	for id, want := range map[string]string{delivered: "delivered", failed: "failed", pending: "pending"} {
		if st := getStatus(t, ta, id); st.Status != want {
			t.Fatalf("%s after restart: %+v, want %s", id, st, want)
		}
	}
	mem.setFail(nil)
	waitFor(t, "the pending message", func() bool { return getStatus(t, ta, pending).Status == "delivered" })
}

func TestSpoolFullAnswers503AndRecovers(t *testing.T) {
	mem := &memSink{}
	mem.setFail(func([]sink.Message) error { return errTransient })
	dir := t.TempDir()
	sp, _ := spool.Open(filepath.Join(dir, "spool"), spool.Options{Logger: quiet(), MaxBytes: 64 << 10, SegmentBytes: 16 << 10})
	dl, _ := spool.Open(filepath.Join(dir, "dl"), spool.Options{Logger: quiet()})
	a, err := New(Options{Spool: sp, DeadLetter: dl, Listen: "127.0.0.1:0", AdminListen: "-", Logger: quiet(),
		Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink(), RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-a.Ready()
	in, _ := a.Addrs()
	url := "http://" + in + "/v1/topics/t"
	accepted := 0
	var r reply
	for i := 0; i < 1000; i++ {
		if r = do(t, "POST", url, "", bytes.Repeat([]byte("v"), 1000), nil); r.status != 202 {
			break
		}
		accepted++
	}
	if r.status != 503 || r.code != "spool_full" || r.header.Get("Retry-After") == "" {
		t.Fatalf("at the cap after %d: %+v", accepted, r)
	}
	mem.setFail(nil)
	waitFor(t, "drain", func() bool { return len(mem.messages()) == accepted })
	waitFor(t, "accepting again", func() bool { return do(t, "POST", url, "", []byte("again"), nil).status == 202 })
}

func TestDrainEndpointStopsAgent(t *testing.T) {
	mem := &memSink{}
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	do(t, "POST", ta.url+"/v1/topics/t", "", []byte("x"), nil)
	if r := do(t, "POST", ta.url+"/v1/control/drain", "", nil, ta.ctl()); r.status != 202 {
		t.Fatalf("drain from loopback: %+v", r)
	}
	select {
	case err := <-ta.done:
		ta.done <- err
	case <-time.After(20 * time.Second):
		t.Fatal("drain did not stop the agent")
	}
	if len(mem.messages()) != 1 {
		t.Fatal("drain did not deliver the backlog")
	}
	if _, err := net.Dial("tcp", strings.TrimPrefix(ta.url, "http://")); err == nil {
		t.Fatal("still listening after drain")
	}
}

func TestControlPeerCheck(t *testing.T) {
	for addr, want := range map[net.Addr]bool{
		&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5}:         true,
		&net.TCPAddr{IP: net.IPv6loopback, Port: 5}:               true,
		&net.UnixAddr{Name: "@", Net: "unix"}:                     true,
		&net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 5}:          false,
		&net.TCPAddr{IP: net.ParseIP("::ffff:10.0.0.1"), Port: 5}: false,
	} {
		var ctx fasthttp.RequestCtx
		ctx.Init(&fasthttp.Request{}, addr, nil)
		if got := isLocalPeer(&ctx); got != want {
			t.Errorf("%v: local=%v, want %v", addr, got, want)
		}
		if want {
			continue
		}
		ctx.Request.Header.SetMethod("POST")
		a := &Agent{m: newAgentMetrics(metrics.NewSet())}
		if e := a.control(&ctx, "drain", "POST"); e == nil || e.status != 403 {
			t.Errorf("%v: control answered %+v", addr, e)
		}
	}
}

func TestSinkBacklogCapPolicies(t *testing.T) {
	opt, must := &memSink{}, &memSink{}
	opt.setFail(func([]sink.Message) error { return errTransient })
	must.setFail(func([]sink.Message) error { return errTransient })
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{
		{Name: "optional", Sink: opt.sink(), Topics: []string{"o"}, MaxBacklogBytes: 4096, BacklogPolicy: "drop_oldest"},
		{Name: "must", Sink: must.sink(), Topics: []string{"m"}, MaxBacklogBytes: 4096},
	}})
	var first string
	for i := 0; i < 40; i++ {
		r := do(t, "POST", ta.url+"/v1/topics/o", "", bytes.Repeat([]byte("o"), 200), nil)
		if r.status != 202 {
			t.Fatalf("drop_oldest sink refused a push: %+v", r)
		}
		if i == 0 {
			first = r.ids[0]
		}
	}
	waitFor(t, "the optional sink's cap", func() bool { return ta.a.fwds[0].cursor.BacklogBytes() <= 4096 })
	if st := getStatus(t, ta, first); st.Status != "dropped" {
		t.Fatalf("oldest message of the capped sink: %+v", st)
	}
	var r reply
	for i := 0; i < 40; i++ {
		if r = do(t, "POST", ta.url+"/v1/topics/m", "", bytes.Repeat([]byte("m"), 200), nil); r.status != 202 {
			break
		}
	}
	if r.status != 503 || r.code != "spool_full" {
		t.Fatalf("reject sink at its cap: %+v", r)
	}
	// The other sink's cap does not affect it.
	if r := do(t, "POST", ta.url+"/v1/topics/o", "", []byte("x"), nil); r.status != 202 {
		t.Fatalf("optional sink: %+v", r)
	}
}

func TestIdempotencyKey(t *testing.T) {
	mem := &memSink{}
	dir := t.TempDir()
	ta := startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	key := map[string]string{"Idempotency-Key": "order-1001"}
	first := do(t, "POST", ta.url+"/v1/topics/t", "application/x-ndjson", []byte("a\nb\n"), key)
	again := do(t, "POST", ta.url+"/v1/topics/t", "application/x-ndjson", []byte("a\nb\n"), key)
	if first.status != 202 || again.status != 202 || strings.Join(first.ids, ",") != strings.Join(again.ids, ",") ||
		again.header.Get("Sluice-Idempotent-Replay") != "true" {
		t.Fatalf("retry: %+v then %+v", first, again)
	}
	if r := do(t, "POST", ta.url+"/v1/topics/t", "application/x-ndjson", []byte("a\nc\n"), key); r.status != 409 || r.code != "idempotency_conflict" {
		t.Fatalf("same key, other body: %+v", r)
	}
	if ta.sp.LastSeq() != 2 {
		t.Fatalf("spooled %d records", ta.sp.LastSeq())
	}

	// Concurrent requests with one key: one spools, all get its ids.
	var wg sync.WaitGroup
	results := make([]reply, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = do(t, "POST", ta.url+"/v1/topics/t", "", []byte("same"), map[string]string{"Idempotency-Key": "k-concurrent"})
		}()
	}
	wg.Wait()
	for _, r := range results {
		if r.status != 202 || r.ids[0] != results[0].ids[0] {
			t.Fatalf("concurrent: %+v vs %+v", r, results[0])
		}
	}
	if ta.sp.LastSeq() != 3 {
		t.Fatalf("concurrent requests spooled %d records in all", ta.sp.LastSeq())
	}
	ta.stop(t)

	// After a restart the key is still known.
	ta = startAgent(t, dir, Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	after := do(t, "POST", ta.url+"/v1/topics/t", "application/x-ndjson", []byte("a\nb\n"), key)
	if after.status != 202 || strings.Join(after.ids, ",") != strings.Join(first.ids, ",") || ta.sp.LastSeq() != 3 {
		t.Fatalf("after restart: %+v, last seq %d", after, ta.sp.LastSeq())
	}
	if r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("x"), map[string]string{"Idempotency-Key": strings.Repeat("k", 300)}); r.status != 400 {
		t.Fatalf("bad key: %+v", r)
	}
}

func TestDeadLetterListShowReplayPurge(t *testing.T) {
	mem := &memSink{}
	broken := true
	var mu sync.Mutex
	mem.setFail(func(msgs []sink.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if broken {
			return sink.Permanent(sink.WithReason("invalid_record", errors.New("schema mismatch")))
		}
		return nil
	})
	dir := t.TempDir()
	opts := Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink(), BatchMessages: 1}}}
	ta := startAgent(t, dir, opts)
	var ids []string
	for i := 0; i < 6; i++ {
		topic := "a"
		if i%2 == 1 {
			topic = "b"
		}
		ids = append(ids, do(t, "POST", ta.url+"/v1/topics/"+topic, "", []byte(fmt.Sprint(i)), map[string]string{"Sluice-Key": "k"}).ids...)
	}
	// Topics a and b are separate lanes: the last push failing says
	// nothing of the other lane's.
	waitFor(t, "dead letters", func() bool {
		return getStatus(t, ta, ids[4]).Status == "failed" && getStatus(t, ta, ids[5]).Status == "failed"
	})
	list := func(q string) (int, []DeadLetter) {
		var v struct {
			Total       int
			Deadletters []DeadLetter
		}
		r := do(t, "GET", ta.url+"/v1/control/deadletters"+q, "", nil, ta.ctl())
		json.Unmarshal(r.raw, &v)
		return v.Total, v.Deadletters
	}
	if n, _ := list(""); n != 6 {
		t.Fatalf("list: %d", n)
	}
	// Topics a and b are separate lanes: only within a topic is the
	// order of dead letters fixed.
	if n, dls := list("?topic=a"); n != 3 || dls[0].ID != ids[0] || dls[0].Reason != "invalid_record" || dls[0].Topic != "a" || *dls[0].Key != "k" {
		t.Fatalf("list: %d %+v", n, dls)
	}
	n, dls := list("?topic=b&limit=2")
	if n != 3 || len(dls) != 2 || dls[0].ID != ids[1] {
		t.Fatalf("filtered: %d %+v", n, dls)
	}
	var one DeadLetter
	json.Unmarshal(do(t, "GET", fmt.Sprintf("%s/v1/control/deadletters/%d", ta.url, dls[0].DLID), "", nil, ta.ctl()).raw, &one)
	if one.ID != ids[1] || one.ValueB64 != "MQ==" {
		t.Fatalf("show: %+v", one)
	}
	// Purge topic b; fix the sink; replay the rest.
	if r := do(t, "POST", ta.url+"/v1/control/deadletters/purge?topic=b", "", nil, ta.ctl()); r.status != 200 {
		t.Fatalf("purge: %+v", r)
	}
	if n, _ := list(""); n != 3 {
		t.Fatalf("after purge: %d", n)
	}
	mu.Lock()
	broken = false
	mu.Unlock()
	if r := do(t, "POST", ta.url+"/v1/control/deadletters/replay", "", nil, ta.ctl()); r.status != 200 {
		t.Fatalf("replay: %+v", r)
	}
	waitFor(t, "replayed delivery", func() bool { return len(mem.messages()) == 3 })
	for i, m := range mem.messages() {
		if m.ID != ids[2*i] || string(m.Value) != fmt.Sprint(2*i) {
			t.Fatalf("replayed %d: %s %q", i, m.ID, m.Value)
		}
	}
	if n, _ := list(""); n != 0 {
		t.Fatalf("after replay: %d left", n)
	}
	waitFor(t, "status", func() bool { return getStatus(t, ta, ids[0]).Status == "delivered" })
	ta.stop(t)
	// Across a restart: the replayed message stays delivered, the purged failed.
	ta = startAgent(t, dir, opts)
	if st := getStatus(t, ta, ids[1]); st.Status != "failed" {
		t.Fatalf("purged after restart: %+v", st)
	}
	if n, _ := list(""); n != 0 {
		t.Fatalf("listing after restart: %d", n)
	}
}

func TestDeadLetterTopicCopy(t *testing.T) {
	mem := &memSink{}
	mem.setFail(func(msgs []sink.Message) error {
		for _, m := range msgs {
			if string(m.Value) == "poison" && m.Topic != "dlq" {
				return sink.Permanent(sink.WithReason("too_large", errors.New("MESSAGE_TOO_LARGE")))
			}
		}
		return nil
	})
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "k", Sink: mem.sink(), DeadLetterTopic: "dlq"}}})
	id := do(t, "POST", ta.url+"/v1/topics/orders", "", []byte("poison"), map[string]string{"Sluice-Key": "k1"}).ids[0]
	waitFor(t, "the copy on the dead-letter topic", func() bool { return len(mem.messages()) == 1 })
	m := mem.messages()[0]
	h := map[string]string{}
	for _, x := range m.Headers {
		h[x.Key] = string(x.Value)
	}
	if m.Topic != "dlq" || m.ID != id || string(m.Key) != "k1" || h["sluice-deadletter-reason"] != "too_large" ||
		h["sluice-original-topic"] != "orders" || !strings.Contains(h["sluice-deadletter-error"], "MESSAGE_TOO_LARGE") {
		t.Fatalf("dead-letter copy %+v", m)
	}
	if st := getStatus(t, ta, id); st.Status != "failed" {
		t.Fatalf("status %+v", st)
	}
}

func TestDroppedMetricCountsSpoolAndSinkDrops(t *testing.T) {
	mem := &memSink{}
	mem.setFail(func([]sink.Message) error { return errTransient })
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{
		{Name: "opt", Sink: mem.sink(), MaxBacklogBytes: 4096, BacklogPolicy: "drop_oldest"},
	}})
	for i := 0; i < 40; i++ {
		do(t, "POST", ta.url+"/v1/topics/t", "", bytes.Repeat([]byte("x"), 200), nil)
	}
	// The cap is enforced periodically, possibly while the pushes above
	// were still arriving: wait until the backlog is back under the cap.
	waitFor(t, "drops", func() bool { return ta.a.fwds[0].cursor.BacklogBytes() <= 4096 })
	resp, _ := http.Get(ta.admin + "/metrics")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got uint64
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, `sluice_dropped_total{sink="opt"} `); ok {
			got, _ = strconv.ParseUint(v, 10, 64)
		}
	}
	// 40 pushes of ~200 bytes against a 4 KiB cap: most were dropped, and
	// the metric reports the cursor's count (read after the scrape).
	if got < 20 || got > ta.a.fwds[0].cursor.DroppedTotal() {
		t.Fatalf("sluice_dropped_total = %d, cursor dropped %d:\n%s", got, ta.a.fwds[0].cursor.DroppedTotal(), b)
	}
}
