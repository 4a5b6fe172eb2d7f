package loadgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"
)

// fakeAgent answers pushes the way the agent does: 202 {"ids":[...]} with
// one id per message, or a JSON error. It records every accepted message in
// arrival order, so it doubles as the sink of a verify run.
type fakeAgent struct {
	// rejectEvery > 0: request number k (1-based) with k % rejectEvery == 0
	// gets 503 spool_full.
	rejectEvery int
	// token, when set, is required as a bearer token.
	token string
	// pendingEvery > 0: with Sluice-Ack: delivered, request k with k %
	// pendingEvery == 0 answers status "pending", the others "delivered".
	pendingEvery int

	mu        sync.Mutex
	requests  int
	rejected  int
	accepted  int // messages
	nextID    int
	delivered []Delivered
	bad       []string // protocol violations seen
	ackHeader int      // requests with Sluice-Ack: delivered
}

func (f *fakeAgent) violation(format string, args ...any) {
	f.bad = append(f.bad, fmt.Sprintf(format, args...))
}

func (f *fakeAgent) handle(ctx *fasthttp.RequestCtx) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	reply := func(status int, v any) {
		b, _ := json.Marshal(v)
		ctx.SetStatusCode(status)
		ctx.SetContentType("application/json")
		ctx.SetBody(b)
	}
	fail := func(status int, code string) {
		if status == fasthttp.StatusServiceUnavailable {
			ctx.Response.Header.Set("Retry-After", "1")
		}
		reply(status, map[string]string{"error": "fake " + code, "code": code})
	}
	if !ctx.IsPost() {
		f.violation("method %s", ctx.Method())
		fail(405, "method_not_allowed")
		return
	}
	if f.token != "" && string(ctx.Request.Header.Peek("Authorization")) != "Bearer "+f.token {
		fail(401, "unauthorized")
		return
	}

	type msg struct{ topic, key, value string }
	var msgs []msg
	path := string(ctx.Path())
	switch {
	case strings.HasPrefix(path, "/v1/topics/"):
		topic := strings.TrimPrefix(path, "/v1/topics/")
		key := string(ctx.Request.Header.Peek("Sluice-Key"))
		if string(ctx.Request.Header.ContentType()) == "application/x-ndjson" {
			for line := range bytes.SplitSeq(ctx.PostBody(), []byte{'\n'}) {
				if len(line) > 0 {
					msgs = append(msgs, msg{topic, key, string(line)})
				}
			}
		} else {
			msgs = append(msgs, msg{topic, key, string(ctx.PostBody())})
		}
	case path == "/v1/messages":
		var req struct {
			Messages []struct {
				Topic string          `json:"topic"`
				Key   string          `json:"key"`
				Value json.RawMessage `json:"value"`
			} `json:"messages"`
		}
		if err := json.Unmarshal(ctx.PostBody(), &req); err != nil {
			f.violation("bad JSON batch: %v", err)
			fail(400, "bad_request")
			return
		}
		for _, m := range req.Messages {
			if len(m.Value) == 0 || m.Value[0] != '"' {
				f.violation("json mode value is not a JSON string: %s", m.Value)
			}
			msgs = append(msgs, msg{m.Topic, m.Key, string(m.Value)})
		}
	default:
		f.violation("path %s", path)
		fail(404, "not_found")
		return
	}
	if len(msgs) == 0 {
		f.violation("request without messages")
		fail(400, "bad_request")
		return
	}
	if f.rejectEvery > 0 && f.requests%f.rejectEvery == 0 {
		f.rejected++
		fail(503, "spool_full")
		return
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		f.nextID++
		ids[i] = fmt.Sprintf("fake-1-%d", f.nextID)
		d := Delivered{ID: ids[i], Topic: m.topic, Key: m.key, N: -1, Partition: -1, Offset: -1}
		if vf, ok := ParseValue([]byte(m.value)); ok {
			d.Run, d.N = vf.Run, vf.N
			if vf.Key != m.key {
				f.violation("value key %q sent with key %q", vf.Key, m.key)
			}
		} else {
			f.violation("value not from a load run: %.100s", m.value)
		}
		f.delivered = append(f.delivered, d)
	}
	f.accepted += len(msgs)
	body := map[string]any{"ids": ids}
	if string(ctx.Request.Header.Peek("Sluice-Ack")) == "delivered" {
		f.ackHeader++
		body["status"] = "delivered"
		if f.pendingEvery > 0 && f.requests%f.pendingEvery == 0 {
			body["status"] = "pending"
		}
	}
	reply(fasthttp.StatusAccepted, body)
}

// serve starts f on a loopback TCP port (unix == false) or a unix socket
// and returns the URL for Config.URL.
func (f *fakeAgent) serve(t *testing.T, unix bool) string {
	t.Helper()
	var ln net.Listener
	var err error
	var url string
	if unix {
		dir, derr := os.MkdirTemp("", "lg")
		if derr != nil {
			t.Fatal(derr)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		path := filepath.Join(dir, "s.sock")
		ln, err = net.Listen("unix", path)
		url = "unix:" + path
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			url = "http://" + ln.Addr().String()
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: f.handle, CloseOnShutdown: true}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return url
}

func (f *fakeAgent) check(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.bad {
		t.Error("fake agent saw:", b)
	}
}
