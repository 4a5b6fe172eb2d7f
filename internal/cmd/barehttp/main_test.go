package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestRepliesOneIDPerMessageAndWrites(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "bodies"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := &handler{out: f}
	for _, c := range []struct {
		ctype, body string
		ids         int
	}{
		{"application/json", `{"a":1}`, 1},
		{"application/x-ndjson", "a\nb\r\n\nc", 3},
		{"application/x-ndjson; charset=utf-8", "a\n", 1},
	} {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.Header.SetContentType(c.ctype)
		ctx.Request.SetBodyString(c.body)
		h.serve(&ctx)
		var reply struct{ IDs []string }
		if err := json.Unmarshal(ctx.Response.Body(), &reply); err != nil {
			t.Fatalf("%q: %v: %s", c.body, err, ctx.Response.Body())
		}
		if ctx.Response.StatusCode() != 202 || len(reply.IDs) != c.ids {
			t.Errorf("%q: %d %q, want 202 and %d ids", c.body, ctx.Response.StatusCode(), reply.IDs, c.ids)
		}
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":1}` + "a\nb\r\n\nc" + "a\n"; string(b) != want {
		t.Errorf("file holds %q, want %q", b, want)
	}
}

func TestDurableWritesEveryBodyBeforeItAnswers(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "bodies"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := &handler{sync: newCommitter(f, 8)}
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetMethod("POST")
			ctx.Request.SetRequestURI("/v1/messages")
			ctx.Request.Header.SetContentType("application/json")
			body := fmt.Sprintf(`{"messages":[{"topic":"t","value":"%d"},{"topic":"t","value":"\"topic\""}]}`, i)
			ctx.Request.SetBodyString(body)
			h.serve(&ctx)
			var reply struct{ IDs []string }
			if err := json.Unmarshal(ctx.Response.Body(), &reply); err != nil || ctx.Response.StatusCode() != 202 || len(reply.IDs) != 2 {
				t.Errorf("%d: %d %s, want 202 and 2 ids", i, ctx.Response.StatusCode(), ctx.Response.Body())
				return
			}
			// Answered means written: the body is in the file now.
			b, err := os.ReadFile(f.Name())
			if err != nil || !bytes.Contains(b, []byte(body)) {
				t.Errorf("%d answered before its body was in the file (%v)", i, err)
			}
		})
	}
	wg.Wait()
	h.sync.close()
	if c, r := h.sync.commits.Load(), h.sync.records.Load(); r != n || c == 0 || c > r {
		t.Errorf("%d commits of %d records, want %d records in 1..%d commits", c, r, n, n)
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.SetBodyString("late")
	h.serve(&ctx)
	if ctx.Response.StatusCode() != 500 {
		t.Errorf("after close: %d, want 500", ctx.Response.StatusCode())
	}
}
