package httpsink

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/sinktest"
)

// TestJSONValueByteForByte: a JSON value travels as the "value" member,
// exactly as pushed, and the receiver keeps its bytes; the id is kept.
func TestJSONValueByteForByte(t *testing.T) {
	rc := newReceiver(t)
	w := newWriter(t, Options{URL: rc.url()})
	value := `{"b":1,"a":[1.50,"\u00e9"]}`
	msgs := []sink.Message{
		{ID: "e1-7", Topic: "orders", Key: []byte("k1"), Value: []byte(value), Partition: sink.NoPartition},
		{ID: "e1-8", Topic: "orders", Value: []byte{0xff, 0x00, '{'}, Partition: sink.NoPartition},
		{ID: "e1-9", Topic: "orders", Key: []byte{}, Value: []byte(` {"pad":true}`), Partition: sink.NoPartition},
	}
	if err := w.Write(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	_, raw := rc.request(0)
	wantBody := `{"messages":[` +
		`{"topic":"orders","key":"k1","value":{"b":1,"a":[1.50,"\u00e9"]},"id":"e1-7"},` +
		`{"topic":"orders","value_b64":"/wB7","id":"e1-8"},` +
		`{"topic":"orders","key":"","value_b64":"IHsicGFkIjp0cnVlfQ==","id":"e1-9"}]}`
	if string(raw) != wantBody {
		t.Fatalf("body\n got %s\nwant %s", raw, wantBody)
	}
	got := rc.messages()
	if len(got) != 3 || string(got[0].Value) != value || got[0].ID != "e1-7" {
		t.Fatalf("arrived %+v", got)
	}
	if err := sinktest.Diff(caps, msgs, got); err != nil {
		t.Fatal(err)
	}
}

// TestRequestHeaders: token, extra headers, Host and Content-Type are sent.
func TestRequestHeaders(t *testing.T) {
	rc := newReceiver(t)
	w := newWriter(t, Options{
		URL:     rc.url(),
		Token:   "s3cret-token",
		Headers: map[string]string{"X-Env": "prod", "x-tenant": "acme", "Host": "collector.internal"},
	})
	if err := w.Write(context.Background(), sinktest.Generate("h-", 2, 10)); err != nil {
		t.Fatal(err)
	}
	r, _ := rc.request(0)
	for k, want := range map[string]string{
		"Authorization":    "Bearer s3cret-token",
		"X-Env":            "prod",
		"X-Tenant":         "acme",
		"Content-Type":     "application/json",
		"Content-Encoding": "",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if r.Method != "POST" || r.URL.Path != "/v1/messages" || r.Host != "collector.internal" {
		t.Errorf("request %s %s Host %s", r.Method, r.URL.Path, r.Host)
	}

	// The token is in no error.
	rc.setAnswer(answerStatus(401, `{"error":"bad token","code":"unauthorized"}`))
	err := w.Write(context.Background(), sinktest.Generate("h-", 1, 10))
	if sink.Reason(err) != ReasonAuth || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Write = %v (reason %s)", err, sink.Reason(err))
	}
}

func TestGzip(t *testing.T) {
	rc := newReceiver(t)
	w := newWriter(t, Options{URL: rc.url(), Gzip: true})
	var want []sink.Message
	for b := range 3 { // the gzip writer and buffers are reused
		msgs := sinktest.Generate("gz"+string(rune('a'+b))+"-", 50, 300)
		want = append(want, sinktest.Clone(msgs)...)
		if err := w.Write(context.Background(), msgs); err != nil {
			t.Fatal(err)
		}
		sinktest.Scribble(msgs)
		r, raw := rc.request(b)
		if r.Header.Get("Content-Encoding") != "gzip" || !bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
			t.Fatalf("request %d: Content-Encoding %q, body starts % x: want gzip", b, r.Header.Get("Content-Encoding"), raw[:min(4, len(raw))])
		}
		if r.ContentLength != int64(len(raw)) {
			t.Fatalf("Content-Length %d, body %d bytes", r.ContentLength, len(raw))
		}
	}
	if err := sinktest.Diff(caps, want, rc.messages()); err != nil {
		t.Fatal(err)
	}
}

// TestIDHeaderNotSent: a sluice-id header travels as the id field only.
func TestIDHeaderNotSent(t *testing.T) {
	rc := newReceiver(t)
	w := newWriter(t, Options{URL: rc.url()})
	msgs := []sink.Message{{
		ID: "x-1", Topic: "t", Value: []byte("v"), Partition: sink.NoPartition,
		Headers: []sink.Header{{Key: "Sluice-ID", Value: []byte("x-1")}, {Key: "a", Value: []byte("1")}},
	}}
	if err := w.Write(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	got := rc.messages()
	if len(got) != 1 || got[0].ID != "x-1" || len(got[0].Headers) != 1 || got[0].Headers[0].Key != "a" {
		t.Fatalf("arrived %+v", got)
	}
}

// TestUnrepresentableWithFailure: when the request fails, the failure is
// reported for the whole batch, not mixed with per-message errors.
func TestUnrepresentableWithFailure(t *testing.T) {
	rc := newReceiver(t)
	w := newWriter(t, Options{URL: rc.url()})
	msgs := sinktest.Generate("u-", 4, 10)
	msgs[1].Key = []byte{0xc3}
	for _, c := range []struct {
		status    int
		permanent bool
	}{{503, false}, {400, true}} {
		rc.setAnswer(answerStatus(c.status, "no"))
		err := w.Write(context.Background(), msgs)
		if err == nil || sink.IsPermanent(err) != c.permanent || sink.Reason(err) == ReasonNotUTF8 {
			t.Fatalf("status %d: Write = %v (reason %s), want the request's outcome", c.status, err, sink.Reason(err))
		}
	}
}
