package agent

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// The pooled render buffer goes back to the pool right after SetBody: a
// reply already set must not change when the next pull reuses the buffer.
func TestQueuePullReplyDoesNotAliasPooledBuffer(t *testing.T) {
	dir := t.TempDir()
	ta := startAgent(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q"}))
	defer ta.stop(t)
	q := ta.a.queues[0]
	for i := 0; i < 40; i++ {
		pushKey(t, ta.url, "t", "k", strings.Repeat(string(rune('a'+i%26)), 100))
	}
	waitFor(t, "read", func() bool { r, _ := q.counts(); return r == 40 })
	one := 1
	var ctxs []*fasthttp.RequestCtx
	var saved [][]byte
	for i := 0; i < 40; i++ {
		ctx := &fasthttp.RequestCtx{}
		if err := q.servePull(ctx, ta.a, &queueRequest{Max: &one}); err != nil {
			t.Fatal(err)
		}
		ctxs = append(ctxs, ctx)
		saved = append(saved, bytes.Clone(ctx.Response.Body()))
	}
	for i, ctx := range ctxs {
		if !bytes.Equal(ctx.Response.Body(), saved[i]) || ctx.Response.StatusCode() != 200 {
			t.Fatalf("reply %d changed after later pulls:\n%s\n%s", i, saved[i], ctx.Response.Body())
		}
	}
}

// A queue body was trimmed with bytes.TrimSpace, which also strips \v, \f
// and Unicode spaces (NEL, NBSP, U+3000...). None is JSON whitespace, so
// such a body is not exactly one JSON document: 400, as the README says.
func TestQueueBodyWithNonJSONWhitespaceIsRefused(t *testing.T) {
	dir := t.TempDir()
	ta := startAgent(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q"}))
	defer ta.stop(t)
	for _, body := range []string{"{\"max\":1}\v", "\f{\"max\":1}", "{\"max\":1}\u00a0", "\u0085{\"max\":1}", "{\"max\":1}\u3000"} {
		resp, err := http.Post(ta.url+"/v1/queues/q/pull", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("pull body %q: %d, want 400 (not one JSON document)", body, resp.StatusCode)
		}
	}
}
