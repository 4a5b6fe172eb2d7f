package httpsink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluiceio/sluice/sink"
)

func TestNewRejects(t *testing.T) {
	cases := map[string]Options{
		"no URL":             {},
		"bad scheme":         {URL: "ftp://127.0.0.1/x"},
		"no host":            {URL: "http:///v1/messages"},
		"unparsable":         {URL: "http://[::1"},
		"negative timeout":   {URL: "http://127.0.0.1/", Timeout: -1},
		"bad header name":    {URL: "http://127.0.0.1/", Headers: map[string]string{"X Bad": "1"}},
		"bad header value":   {URL: "http://127.0.0.1/", Headers: map[string]string{"X-A": "a\r\nX-B: b"}},
		"reserved header":    {URL: "http://127.0.0.1/", Headers: map[string]string{"content-encoding": "br"}},
		"token and authz":    {URL: "http://127.0.0.1/", Token: "t", Headers: map[string]string{"Authorization": "Basic x"}},
		"token with newline": {URL: "http://127.0.0.1/", Token: "t\n"},
	}
	for name, o := range cases {
		if w, err := New(o); err == nil {
			w.Close(context.Background())
			t.Errorf("%s: New accepted %v", name, o)
		}
	}
	w, err := New(Options{URL: "https://user:pw@127.0.0.1:1/v1/messages", Headers: map[string]string{"Authorization": "Basic eA=="}})
	if err != nil {
		t.Fatalf("valid options: %v", err)
	}
	w.Close(context.Background())
}

func TestOptionsRedacted(t *testing.T) {
	o := Options{URL: "https://user:pa55@127.0.0.1/v1", Token: "t0ken", Headers: map[string]string{"X-Api-Key": "k3y"}}
	for _, s := range []string{o.String(), fmt.Sprintf("%v", o), fmt.Sprintf("%+v", o), fmt.Sprintf("%#v", o), o.LogValue().String()} {
		if strings.Contains(s, "pa55") || strings.Contains(s, "t0ken") || strings.Contains(s, "k3y") {
			t.Errorf("secret in %q", s)
		}
		if !strings.Contains(s, "X-Api-Key") {
			t.Errorf("header name missing from %q", s)
		}
	}
}

func TestWriteAfterClose(t *testing.T) {
	rc := newReceiver(t)
	w := newWriter(t, Options{URL: rc.url()})
	for range 2 {
		if err := w.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	err := w.Write(context.Background(), []sink.Message{{Topic: "t", Value: []byte("v")}})
	if !errors.Is(err, ErrClosed) || sink.IsPermanent(err) || sink.Reason(err) != ReasonClosed {
		t.Fatalf("Write after Close = %v, want transient ErrClosed", err)
	}
	if n := rc.requestCount(); n != 0 {
		t.Fatalf("%d requests after Close", n)
	}
}
