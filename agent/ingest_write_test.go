package agent

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestWriteIDsMatchesEncodingJSON(t *testing.T) {
	for _, ids := range [][]string{nil, {}, {"a"}, {"0123abcd-1-2", `odd"id\` + "\u2028\x01"}} {
		var ctx fasthttp.RequestCtx
		writeIDs(&ctx, ids)
		var want fasthttp.RequestCtx
		writeJSON(&want, http.StatusAccepted, map[string]any{"ids": ids})
		var got, exp struct{ IDs []string }
		if err := json.Unmarshal(ctx.Response.Body(), &got); err != nil {
			t.Fatalf("%q: %v: %s", ids, err, ctx.Response.Body())
		}
		if err := json.Unmarshal(want.Response.Body(), &exp); err != nil {
			t.Fatal(err)
		}
		if ctx.Response.StatusCode() != 202 || !slices.Equal(got.IDs, exp.IDs) || len(got.IDs) != len(ids) ||
			string(ctx.Response.Header.ContentType()) != "application/json" {
			t.Errorf("%q: %d %s, want 202 %s", ids, ctx.Response.StatusCode(), ctx.Response.Body(), want.Response.Body())
		}
	}
}
