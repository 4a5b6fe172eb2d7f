package agent

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// reportSink records what it was given and reports a delivery like the
// Kafka sink: the explicit partition, or 0 without a key, or the first key
// byte modulo 3; offsets count per topic and partition from 0. fail decides
// per attempt.
type reportSink struct {
	mu      sync.Mutex
	got     []sink.Message
	offsets map[string]int64
	fail    func(msgs []sink.Message) error
}

func (r *reportSink) sink() sink.Sink {
	return funcSink{write: func(ctx context.Context, msgs []sink.Message) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.fail != nil {
			if err := r.fail(msgs); err != nil {
				return err
			}
		}
		if r.offsets == nil {
			r.offsets = map[string]int64{}
		}
		for i := range msgs {
			m := &msgs[i]
			part := m.Partition
			if part == sink.NoPartition {
				part = 0
				if len(m.Key) > 0 {
					part = int32(m.Key[0]) % 3
				}
			}
			k := fmt.Sprintf("%s/%d", m.Topic, part)
			m.Delivered, m.DeliveredPart, m.DeliveredOffset = true, part, r.offsets[k]
			r.offsets[k]++
			c := *m
			c.Key, c.Value = bytes.Clone(m.Key), bytes.Clone(m.Value)
			c.Headers = nil
			for _, h := range m.Headers {
				c.Headers = append(c.Headers, sink.Header{Key: h.Key, Value: bytes.Clone(h.Value)})
			}
			r.got = append(r.got, c)
		}
		return nil
	}}
}

func (r *reportSink) byID(id string) (sink.Message, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.got {
		if m.ID == id {
			return m, true
		}
	}
	return sink.Message{}, false
}

// restProxyProfile is one agent configuration the fixtures run against.
type restProxyProfile struct {
	ta   *testAgent
	sink *reportSink
}

func startRestProxyProfile(t *testing.T, name string) restProxyProfile {
	t.Helper()
	rs := &reportSink{}
	o := Options{MaxMessageBytes: 64, MaxHeaders: 8, RecordCache: 1024}
	switch name {
	case "default":
	case "delivered":
		o.RestProxyAck, o.RestProxyCluster = "delivered", "lkc-test42"
	case "stuck":
		o.RestProxyAck, o.AckTimeout = "delivered", 50*time.Millisecond
		rs.fail = func([]sink.Message) error { return errTransient }
	case "poison":
		o.RestProxyAck = "delivered"
		rs.fail = func(msgs []sink.Message) error {
			for _, m := range msgs {
				if m.Partition >= 3 {
					return sink.Permanent(sink.WithReason("invalid_partition", fmt.Errorf("topic %s has no partition %d", m.Topic, m.Partition)))
				}
				if string(m.Value) == `"poison"` {
					return sink.Permanent(sink.WithReason("invalid_record", errors.New("CORRUPT_MESSAGE")))
				}
			}
			return nil
		}
	case "full":
		o.MaxInflightBytes = 16
	case "draining":
	default:
		t.Fatalf("unknown profile %q", name)
	}
	o.Sinks = []SinkSpec{{Name: "kafka", Sink: rs.sink(), Topics: []string{"orders", "events", "logs.*"}}}
	ta := startAgent(t, t.TempDir(), o)
	if name == "draining" {
		ta.a.draining.Store(true)
	}
	return restProxyProfile{ta: ta, sink: rs}
}

// restProxyFixture is one file of testdata/restproxy: comment lines
// (# profile: NAME, # spooled: N), the request, "--- response" with the
// status line, headers and JSON body, and optionally "--- sink" with one
// expected sink message per line.
type restProxyFixture struct {
	profile  string
	spooled  uint64
	method   string
	path     string
	reqHdr   [][2]string
	reqBody  []byte
	status   int
	respHdr  [][2]string
	respBody []byte
	sinkMsgs []sinkExpect
}

type sinkExpect struct {
	Topic     string      `json:"topic"`
	Key       *string     `json:"key"`
	KeyB64    string      `json:"key_b64"`
	Value     string      `json:"value"`
	ValueB64  string      `json:"value_b64"`
	Partition int32       `json:"partition"`
	Headers   [][2]string `json:"headers"`
}

func readFixture(t *testing.T, path string) restProxyFixture {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f := restProxyFixture{profile: "default"}
	text := string(b)
	req, rest, ok := strings.Cut(text, "\n--- response\n")
	if !ok {
		t.Fatalf("%s: no --- response", path)
	}
	resp, sinkPart, hasSink := strings.Cut(rest, "\n--- sink\n")
	// Request: comments, request line, headers, blank line, body.
	lines := strings.Split(req, "\n")
	for len(lines) > 0 && strings.HasPrefix(lines[0], "#") {
		c := strings.TrimSpace(strings.TrimPrefix(lines[0], "#"))
		if v, ok := strings.CutPrefix(c, "profile:"); ok {
			f.profile = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(c, "spooled:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			f.spooled = uint64(n)
		}
		lines = lines[1:]
	}
	if len(lines) == 0 {
		t.Fatalf("%s: no request line", path)
	}
	f.method, f.path, _ = strings.Cut(lines[0], " ")
	lines = lines[1:]
	for len(lines) > 0 && lines[0] != "" {
		k, v, _ := strings.Cut(lines[0], ":")
		f.reqHdr = append(f.reqHdr, [2]string{k, strings.TrimSpace(v)})
		lines = lines[1:]
	}
	if len(lines) > 0 {
		f.reqBody = []byte(strings.Join(lines[1:], "\n"))
	}
	// Response: status, headers, blank line, JSON body.
	rhead, rbody, _ := strings.Cut(resp, "\n\n")
	lines = strings.Split(rhead, "\n")
	if f.status, err = strconv.Atoi(strings.TrimSpace(lines[0])); err != nil {
		t.Fatalf("%s: status line %q", path, lines[0])
	}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ":")
		f.respHdr = append(f.respHdr, [2]string{k, strings.TrimSpace(v)})
	}
	f.respBody = []byte(strings.TrimSpace(rbody))
	if hasSink {
		for _, l := range strings.Split(strings.TrimSpace(sinkPart), "\n") {
			var e sinkExpect
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("%s: sink line %q: %v", path, l, err)
			}
			f.sinkMsgs = append(f.sinkMsgs, e)
		}
	}
	return f
}

// matchJSON compares a decoded response body with the fixture's. In the
// fixture, "$any" matches any value, "$offset" any integer >= 0,
// "$timestamp" an RFC 3339 time, "$prefix:TEXT" a string starting with TEXT.
func matchJSON(want, got any) bool {
	if s, ok := want.(string); ok && strings.HasPrefix(s, "$") {
		switch {
		case s == "$any":
			return true
		case s == "$offset":
			n, ok := got.(json.Number)
			i, err := n.Int64()
			return ok && err == nil && i >= 0
		case s == "$timestamp":
			g, ok := got.(string)
			_, err := time.Parse(time.RFC3339Nano, g)
			return ok && err == nil
		case strings.HasPrefix(s, "$prefix:"):
			g, ok := got.(string)
			return ok && strings.HasPrefix(g, strings.TrimPrefix(s, "$prefix:"))
		}
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok || !matchJSON(wv, gv) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !matchJSON(w[i], g[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(want, got)
}

// jsonKeys lists the object keys of a JSON document in order: the shape
// check that field order matches the REST Proxy's.
func jsonKeys(b []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(b))
	var keys []string
	var inObject []bool
	expectKey := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return keys
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				inObject = append(inObject, true)
				expectKey = true
				continue
			case '[':
				inObject = append(inObject, false)
			case '}', ']':
				inObject = inObject[:len(inObject)-1]
			}
		case string:
			if expectKey {
				keys = append(keys, v)
				expectKey = false
				continue
			}
		}
		expectKey = len(inObject) > 0 && inObject[len(inObject)-1]
	}
}

func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return v
}

// TestRestProxyFixtures replays every request of testdata/restproxy against
// a running agent and checks status, headers, body (values and field
// order), what was spooled and what reached the sink.
func TestRestProxyFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/restproxy/*.http")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	profiles := map[string]restProxyProfile{}
	for _, file := range files {
		f := readFixture(t, file)
		p, ok := profiles[f.profile]
		if !ok {
			p = startRestProxyProfile(t, f.profile)
			profiles[f.profile] = p
		}
		t.Run(strings.TrimSuffix(filepath.Base(file), ".http"), func(t *testing.T) {
			before := p.ta.sp.LastSeq()
			req, _ := http.NewRequest(f.method, p.ta.url+f.path, bytes.NewReader(f.reqBody))
			for _, h := range f.reqHdr {
				if strings.EqualFold(h[0], "Host") {
					req.Host = h[1]
					continue
				}
				req.Header.Set(h[0], h[1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != f.status {
				t.Fatalf("status %d, want %d\n%s", resp.StatusCode, f.status, body)
			}
			for _, h := range f.respHdr {
				got := resp.Header.Get(h[0])
				if n, ok := strings.CutPrefix(h[1], "$count="); ok {
					if c, _ := strconv.Atoi(n); got == "" || len(strings.Split(got, ",")) != c {
						t.Fatalf("header %s: %q, want %s ids", h[0], got, n)
					}
					continue
				}
				if got != h[1] {
					t.Fatalf("header %s: %q, want %q", h[0], got, h[1])
				}
			}
			want, got := decodeJSON(t, f.respBody), decodeJSON(t, body)
			if !matchJSON(want, got) {
				t.Fatalf("body:\n got %s\nwant %s", bytes.TrimSpace(body), f.respBody)
			}
			if wk, gk := jsonKeys(f.respBody), jsonKeys(body); !reflect.DeepEqual(wk, gk) {
				t.Fatalf("field order:\n got %v\nwant %v", gk, wk)
			}
			if n := p.ta.sp.LastSeq() - before; n != f.spooled {
				t.Fatalf("spooled %d records, want %d", n, f.spooled)
			}
			if f.sinkMsgs == nil {
				return
			}
			ids := strings.Split(resp.Header.Get("Sluice-Ids"), ",")
			if len(ids) != len(f.sinkMsgs) {
				t.Fatalf("Sluice-Ids %v for %d expected sink messages", ids, len(f.sinkMsgs))
			}
			for i, w := range f.sinkMsgs {
				var m sink.Message
				waitFor(t, "delivery of "+ids[i], func() bool { m, ok = p.sink.byID(ids[i]); return ok })
				checkSinkMessage(t, i, m, w)
			}
		})
	}
}

func checkSinkMessage(t *testing.T, i int, m sink.Message, w sinkExpect) {
	t.Helper()
	var wantKey []byte
	switch {
	case w.KeyB64 != "":
		wantKey, _ = base64.StdEncoding.DecodeString(w.KeyB64)
	case w.Key != nil:
		wantKey = []byte(*w.Key)
	}
	wantValue := []byte(w.Value)
	if w.ValueB64 != "" {
		wantValue, _ = base64.StdEncoding.DecodeString(w.ValueB64)
	}
	if m.Topic != w.Topic || !bytes.Equal(m.Key, wantKey) || (m.Key == nil) != (wantKey == nil) ||
		!bytes.Equal(m.Value, wantValue) || m.Partition != w.Partition {
		t.Fatalf("sink message %d: topic %s key %q (nil %v) value %q partition %d, want %+v", i, m.Topic, m.Key, m.Key == nil, m.Value, m.Partition, w)
	}
	var gotHdr [][2]string
	for _, h := range m.Headers {
		gotHdr = append(gotHdr, [2]string{h.Key, string(h.Value)})
	}
	if len(gotHdr) != len(w.Headers) || (len(gotHdr) > 0 && !reflect.DeepEqual(gotHdr, w.Headers)) {
		t.Fatalf("sink message %d headers %q, want %q", i, gotHdr, w.Headers)
	}
}

// TestRestProxyDeliveredReportsSinkOffsets: with the delivered
// acknowledgement, partition and offset are the sink's delivery report for
// each record, and the request records agree.
func TestRestProxyDeliveredReportsSinkOffsets(t *testing.T) {
	p := startRestProxyProfile(t, "delivered")
	body := `{"records":[{"key":"a","value":1},{"key":"b","value":2},{"value":3,"partition":2}]}`
	resp, err := http.Post(p.ta.url+"/topics/orders", rpV2JSON, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var got v2Response
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	ids := strings.Split(resp.Header.Get("Sluice-Ids"), ",")
	if resp.StatusCode != 200 || len(got.Offsets) != 3 || len(ids) != 3 {
		t.Fatalf("%d %+v %v", resp.StatusCode, got, ids)
	}
	for i, o := range got.Offsets {
		m, ok := p.sink.byID(ids[i])
		if !ok || o.Partition == nil || o.Offset == nil || o.ErrorCode != nil || *o.Partition != m.DeliveredPart || *o.Offset != m.DeliveredOffset {
			t.Fatalf("record %d: %+v, sink delivered %v partition %d offset %d", i, o, ok, m.DeliveredPart, m.DeliveredOffset)
		}
		st := getStatus(t, p.ta, ids[i])
		if k := st.Sinks["kafka"]; st.Status != "delivered" || *k.Partition != *o.Partition || *k.Offset != *o.Offset {
			t.Fatalf("request record %d: %+v", i, st)
		}
	}
	if *got.Offsets[2].Partition != 2 {
		t.Fatalf("explicit partition: %+v", got.Offsets[2])
	}
}

// TestRestProxyCommonPath: the REST Proxy routes share the native push
// path: Idempotency-Key replays, rejection metrics, the auth token and the
// per-request Sluice-Ack override.
func TestRestProxyCommonPath(t *testing.T) {
	rs := &reportSink{}
	ta := startAgent(t, t.TempDir(), Options{AuthToken: "s3cret", Sinks: []SinkSpec{{Name: "kafka", Sink: rs.sink(), Topics: []string{"orders"}}}})
	post := func(path, ctype, body string, hdr map[string]string) (*http.Response, []byte) {
		req, _ := http.NewRequest("POST", ta.url+path, strings.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Authorization", "Bearer s3cret")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, b
	}
	v3 := "/v3/clusters/sluice/topics/orders/records"
	rec := `{"value":{"type":"JSON","data":{"n":1}}}`

	// The token is checked before routing: native error shape.
	req, _ := http.NewRequest("POST", ta.url+v3, strings.NewReader(rec))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("no token: %v %v", resp, err)
	}

	key := map[string]string{"Idempotency-Key": "order-7"}
	r1, _ := post(v3, "application/json", rec, key)
	r2, _ := post(v3, "application/json", rec, key)
	if r1.StatusCode != 200 || r1.Header.Get("Sluice-Ids") == "" || r2.Header.Get("Sluice-Ids") != r1.Header.Get("Sluice-Ids") ||
		r2.Header.Get("Sluice-Idempotent-Replay") != "true" || ta.sp.LastSeq() != 1 {
		t.Fatalf("replay: %v / %v, spooled %d", r1.Header, r2.Header, ta.sp.LastSeq())
	}
	if r, b := post(v3, "application/json", `{"value":{"type":"JSON","data":{"n":2}}}`, key); r.StatusCode != 409 || !bytes.Contains(b, []byte(`"error_code":409`)) {
		t.Fatalf("conflict: %d %s", r.StatusCode, b)
	}

	// Sluice-Ack: delivered overrides the spooled default.
	r, b := post(v3, "application/json", `{"value":{"type":"STRING","data":"x"}}`, map[string]string{"Sluice-Ack": "delivered"})
	var out v3Response
	json.Unmarshal(b, &out)
	if r.StatusCode != 200 || out.Offset < 0 || out.PartitionID != 0 {
		t.Fatalf("delivered override: %d %s", r.StatusCode, b)
	}
	if r, _ := post(v3, "application/json", rec, map[string]string{"Sluice-Ack": "maybe"}); r.StatusCode != 400 {
		t.Fatalf("bad Sluice-Ack: %d", r.StatusCode)
	}

	post("/topics/nowhere", rpV2JSON, `{"records":[{"value":1}]}`, nil)
	mresp, err := http.Get(ta.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{`sluice_ingest_rejected_total{code="no_route"} 1`, `sluice_ingest_rejected_total{code="idempotency_conflict"} 1`} {
		if !bytes.Contains(m, []byte(want)) {
			t.Fatalf("metrics lack %s:\n%s", want, m)
		}
	}
}

func TestJavaInstant(t *testing.T) {
	for in, want := range map[int64]string{
		1612552482000000000: "2021-02-05T19:14:42Z",
		1612552482123456789: "2021-02-05T19:14:42.123Z",
		1612552482100000000: "2021-02-05T19:14:42.100Z",
	} {
		if got := javaInstant(time.Unix(0, in)); got != want {
			t.Errorf("%d: %s, want %s", in, got, want)
		}
	}
}
