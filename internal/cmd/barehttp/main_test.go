package main

import (
	"encoding/json"
	"os"
	"path/filepath"
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
