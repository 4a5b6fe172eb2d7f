package httpsink

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/sinktest"
)

// answerStatus makes every request get status with body and extra headers.
func answerStatus(status int, body string, hdr ...string) func(int, http.ResponseWriter, *http.Request) bool {
	return func(_ int, w http.ResponseWriter, r *http.Request) bool {
		_, _ = io.Copy(io.Discard, r.Body)
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
		return true
	}
}

// firstThen answers the first n requests with f and decodes the rest.
func firstThen(n int, f func(int, http.ResponseWriter, *http.Request) bool) func(int, http.ResponseWriter, *http.Request) bool {
	return func(i int, w http.ResponseWriter, r *http.Request) bool {
		return i < n && f(i, w, r)
	}
}

func TestStatusOutcomes(t *testing.T) {
	cases := []struct {
		status    int
		permanent bool
		reason    string
	}{
		{400, true, "http_400"},
		{413, true, "http_413"},
		{409, true, "http_409"},
		{410, true, "http_410"},
		{422, true, "http_422"},
		{401, false, ReasonAuth},
		{403, false, ReasonAuth},
		{407, false, ReasonAuth},
		{404, false, "http_404"},
		{405, false, "http_405"},
		{415, false, "http_415"},
		{408, false, "http_408"},
		{429, false, "http_429"},
		{500, false, "http_500"},
		{502, false, "http_502"},
		{503, false, "http_503"},
		{504, false, "http_504"},
	}
	rc := newReceiver(t)
	w := newWriter(t, Options{URL: rc.url()})
	for _, c := range cases {
		t.Run(strconv.Itoa(c.status), func(t *testing.T) {
			body := `{"error":"` + http.StatusText(c.status) + `","code":"x"}`
			rc.setAnswer(answerStatus(c.status, body))
			err := w.Write(context.Background(), sinktest.Generate("s-", 3, 20))
			if err == nil {
				t.Fatal("Write = nil")
			}
			if sink.IsPermanent(err) != c.permanent || sink.Reason(err) != c.reason {
				t.Fatalf("Write = %v: permanent %v reason %s, want permanent %v reason %s",
					err, sink.IsPermanent(err), sink.Reason(err), c.permanent, c.reason)
			}
			var be *sink.BatchError
			if errors.As(err, &be) {
				t.Fatalf("Write = %v: a BatchError, want a whole-batch error", err)
			}
			var se *StatusError
			if !errors.As(err, &se) || se.StatusCode != c.status || se.Body != body {
				t.Fatalf("Write = %v: want a StatusError with status %d and body %s", err, c.status, body)
			}
			if !strings.Contains(err.Error(), strconv.Itoa(c.status)) || !strings.Contains(err.Error(), body) {
				t.Fatalf("error %q does not name the status and body", err)
			}
		})
	}
	rc.setAnswer(nil)
	if err := w.Write(context.Background(), sinktest.Generate("ok-", 3, 20)); err != nil {
		t.Fatalf("2xx: %v", err)
	}
	if got := rc.messages(); len(got) != 3 {
		t.Fatalf("%d messages arrived, want 3", len(got))
	}
}

func TestBodyExcerpt(t *testing.T) {
	rc := newReceiver(t)
	long := strings.Repeat("é", 300) + "\n\tend" + strings.Repeat("x", 4000) // 600 bytes of é first
	rc.setAnswer(answerStatus(400, long))
	w := newWriter(t, Options{URL: rc.url()})
	err := w.Write(context.Background(), sinktest.Generate("e-", 1, 20))
	var se *StatusError
	if !errors.As(err, &se) {
		t.Fatalf("Write = %v, want a StatusError", err)
	}
	if len(se.Body) > BodyExcerptBytes || !strings.HasPrefix(long, se.Body) || len(se.Body) < BodyExcerptBytes-2 {
		t.Fatalf("excerpt of %d bytes %q: want the first ≤%d bytes, cut on a character boundary", len(se.Body), se.Body, BodyExcerptBytes)
	}
	if got := printable([]byte("a\nb\x00c\xffd")); got != "a b cd" {
		t.Fatalf("printable = %q", got)
	}
}

// TestRetryAfterWaited: a 503 with Retry-After returns transient after the
// wait, and the retry reaches the server.
func TestRetryAfterWaited(t *testing.T) {
	rc := newReceiver(t)
	rc.setAnswer(firstThen(1, answerStatus(503, `{"code":"spool_full"}`, "Retry-After", "1")))
	w := newWriter(t, Options{URL: rc.url()})
	msgs := sinktest.Generate("ra-", 5, 20)
	err := w.Write(context.Background(), msgs)
	var se *StatusError
	if err == nil || sink.IsPermanent(err) || sink.Reason(err) != "http_503" || !errors.As(err, &se) || se.RetryAfter != time.Second {
		t.Fatalf("Write = %v (reason %s), want transient http_503 with RetryAfter 1s", err, sink.Reason(err))
	}
	if err := w.Write(context.Background(), msgs); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if n := rc.requestCount(); n != 2 {
		t.Fatalf("server saw %d requests, want 2 (the first and the retry)", n)
	}
	if err := sinktest.Diff(caps, msgs, rc.messages()); err != nil {
		t.Fatal(err)
	}
}

// TestRetryAfterValues checks how long Write waits, through the wait hook.
func TestRetryAfterValues(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	cases := []struct {
		name   string
		status int
		value  string
		want   time.Duration // 0: no wait
	}{
		{"seconds", 503, "7", 7 * time.Second},
		{"429", 429, "2", 2 * time.Second},
		{"408", 408, "3", 3 * time.Second},
		{"500", 500, "4", 4 * time.Second},
		{"capped", 503, "3600", MaxRetryAfter},
		{"huge", 503, "99999999999999999999999", MaxRetryAfter},
		{"date", 503, now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second},
		{"date capped", 503, now.Add(time.Hour).Format(http.TimeFormat), MaxRetryAfter},
		{"date past", 503, now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"zero", 503, "0", 0},
		{"negative", 503, "-5", 0},
		{"garbage", 503, "soon", 0},
		{"fraction", 503, "1.5", 0},
		{"permanent ignores it", 400, "5", 0},
		{"auth ignores it", 401, "5", 0},
	}
	rc := newReceiver(t)
	w := newWriter(t, Options{URL: rc.url(), Now: func() time.Time { return now }})
	var waited []time.Duration
	w.wait = func(ctx context.Context, d time.Duration) error {
		waited = append(waited, d)
		return nil
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			waited = nil
			rc.setAnswer(answerStatus(c.status, "busy", "Retry-After", c.value))
			err := w.Write(context.Background(), sinktest.Generate("v-", 1, 10))
			if err == nil {
				t.Fatal("Write = nil")
			}
			switch {
			case c.want == 0 && len(waited) != 0:
				t.Fatalf("waited %v, want no wait", waited)
			case c.want != 0 && (len(waited) != 1 || waited[0] != c.want):
				t.Fatalf("waited %v, want [%v]", waited, c.want)
			}
		})
	}
}

// TestRetryAfterInterrupted: ctx or Close end the Retry-After wait.
func TestRetryAfterInterrupted(t *testing.T) {
	for _, how := range []string{"cancel", "close"} {
		t.Run(how, func(t *testing.T) {
			rc := newReceiver(t)
			rc.setAnswer(answerStatus(503, "busy", "Retry-After", "3600"))
			w := newWriter(t, Options{URL: rc.url()})
			waiting := make(chan time.Duration, 1)
			w.wait = func(ctx context.Context, d time.Duration) error {
				waiting <- d
				return w.sleep(ctx, d)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- w.Write(ctx, sinktest.Generate("i-", 2, 10)) }()
			if d := <-waiting; d != MaxRetryAfter {
				t.Fatalf("waiting %v, want %v", d, MaxRetryAfter)
			}
			if how == "cancel" {
				cancel()
			} else if err := w.Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}
			err := <-done
			want := error(context.Canceled)
			if how == "close" {
				want = ErrClosed
			}
			if !errors.Is(err, want) || sink.IsPermanent(err) || sink.Reason(err) != "http_503" {
				t.Fatalf("Write = %v (reason %s), want transient http_503 wrapping %v", err, sink.Reason(err), want)
			}
		})
	}
}

// TestRedirectNotFollowed: a redirect is a transient error with reason
// "redirect", the target is never requested, and a hint is logged at a
// limited rate.
func TestRedirectNotFollowed(t *testing.T) {
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			rc := newReceiver(t)
			var followed sync.Map
			rc.setAnswer(func(_ int, w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path == "/elsewhere" {
					followed.Store(r.Method, true)
					w.WriteHeader(http.StatusAccepted)
					return true
				}
				w.Header().Set("Location", "/elsewhere")
				w.WriteHeader(status)
				return true
			})
			var logs bytes.Buffer
			var mu sync.Mutex
			logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			// A given client that would follow redirects: the sink still does not.
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return nil }}
			w := newWriter(t, Options{URL: rc.url(), Token: "s3cret", Logger: logger, Client: client, Now: func() time.Time { return now }})
			for range 3 {
				err := w.Write(context.Background(), sinktest.Generate("r-", 2, 10))
				var se *StatusError
				if err == nil || sink.IsPermanent(err) || sink.Reason(err) != ReasonRedirect || !errors.As(err, &se) || !strings.Contains(se.Location, "/elsewhere") {
					t.Fatalf("Write = %v (reason %s), want transient redirect naming the Location", err, sink.Reason(err))
				}
			}
			followed.Range(func(k, _ any) bool {
				t.Fatalf("redirect followed with %v", k)
				return false
			})
			if client.CheckRedirect == nil {
				t.Fatal("the given Client was modified")
			}
			mu.Lock()
			out := logs.String()
			mu.Unlock()
			if n := strings.Count(out, "redirect"); n == 0 || strings.Count(out, "\n") != 1 {
				t.Fatalf("want one log line about the redirect, got:\n%s", out)
			}
			if strings.Contains(out, "s3cret") {
				t.Fatalf("token in the log:\n%s", out)
			}
		})
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	w := newWriter(t, Options{URL: "http://" + addr + "/v1/messages"})
	err = w.Write(context.Background(), sinktest.Generate("c-", 2, 10))
	if err == nil || sink.IsPermanent(err) || sink.Reason(err) != ReasonNetwork {
		t.Fatalf("Write = %v (reason %s), want transient %s", err, sink.Reason(err), ReasonNetwork)
	}
}

// TestNoAnswer: an upstream that accepts the request but never answers
// makes Write fail transiently with reason "timeout" once Timeout passed.
func TestNoAnswer(t *testing.T) {
	rc := newReceiver(t)
	rc.setAnswer(func(_ int, _ http.ResponseWriter, r *http.Request) bool {
		<-r.Context().Done()
		return true
	})
	w := newWriter(t, Options{URL: rc.url(), Timeout: 50 * time.Millisecond})
	err := w.Write(context.Background(), sinktest.Generate("n-", 2, 10))
	if err == nil || sink.IsPermanent(err) || sink.Reason(err) != ReasonTimeout || errors.Is(err, context.Canceled) {
		t.Fatalf("Write = %v (reason %s), want transient %s", err, sink.Reason(err), ReasonTimeout)
	}
	// A caller deadline that ends first is the caller's, not the sink's.
	w2 := newWriter(t, Options{URL: rc.url(), Timeout: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = w2.Write(ctx, sinktest.Generate("n-", 2, 10))
	if !errors.Is(err, context.DeadlineExceeded) || sink.IsPermanent(err) {
		t.Fatalf("Write with a caller deadline = %v, want transient wrapping context.DeadlineExceeded", err)
	}
}

// TestEarlyAnswer: an upstream that answers before reading a large body
// (a proxy's 413) while the next Write reuses the buffers: run with -race.
func TestEarlyAnswer(t *testing.T) {
	rc := newReceiver(t)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > 1<<20 {
			w.WriteHeader(http.StatusRequestEntityTooLarge) // without reading the body
			return
		}
		rc.serve(w, r)
	}))
	t.Cleanup(front.Close)
	for _, gz := range []bool{false, true} {
		w := newWriter(t, Options{URL: front.URL + "/v1/messages", Gzip: gz})
		// 2 MiB of random bytes: more than 1 MiB also when gzipped.
		big := sinktest.Generate("big-", 32, 10)
		rnd := rand.NewChaCha8([32]byte{1})
		for i := range big {
			big[i].Value = make([]byte, 64<<10)
			_, _ = rnd.Read(big[i].Value)
		}
		var want []sink.Message
		for i := range 5 {
			err := w.Write(context.Background(), big)
			if !sink.IsPermanent(err) || sink.Reason(err) != "http_413" {
				t.Fatalf("big batch: %v (reason %s), want Permanent http_413", err, sink.Reason(err))
			}
			small := sinktest.Generate("small-"+strconv.Itoa(i)+"-", 3, 100)
			want = append(want, sinktest.Clone(small)...)
			if err := w.Write(context.Background(), small); err != nil {
				t.Fatalf("small batch after an early answer: %v", err)
			}
		}
		if err := sinktest.Diff(caps, want, rc.messages()[len(rc.messages())-len(want):]); err != nil {
			t.Fatal(err)
		}
	}
}
