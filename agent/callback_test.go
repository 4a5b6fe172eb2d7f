package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
)

func TestCallbackGuardPushTime(t *testing.T) {
	g, err := newCallbackGuard([]string{"10.20.0.0/16", "*.hooks.internal", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	for url, ok := range map[string]bool{
		"http://127.0.0.1:9000/cb":      true,
		"https://[::1]/cb":              true,
		"http://localhost:8080/x":       true,
		"http://10.20.3.4/cb":           true,
		"http://192.0.2.7/cb":           true,
		"http://a.hooks.internal/cb":    true,
		"http://0x7f.1/cb":              false, // loopback in disguise
		"http://0x7f000001/cb":          false,
		"http://2130706433/cb":          false, // decimal 127.0.0.1
		"http://127.1/cb":               false,
		"http://017700000001/cb":        false, // octal
		"http://[::ffff:127.0.0.1]/cb":  false, // IPv4-mapped IPv6
		"http://[::ffff:7f00:1]/cb":     false,
		"http://10.21.0.1/cb":           false,
		"http://169.254.169.254/latest": false, // cloud metadata
		"http://0.0.0.0/cb":             false,
		"http://example.com/cb":         false,
		"http://hooks.internal.evil/cb": false,
		"ftp://127.0.0.1/cb":            false,
		"http://user:pw@127.0.0.1/cb":   false,
		"/relative":                     false,
		"http:///nohost":                false,
	} {
		if err := g.checkURL(url); (err == nil) != ok {
			t.Errorf("%s: allowed=%v, want %v (%v)", url, err == nil, ok, err)
		}
	}
}

// TestCallbackGuardDialTime: the address actually dialled is checked, so
// a name that resolves elsewhere is refused before any connection.
func TestCallbackGuardDialTime(t *testing.T) {
	g, _ := newCallbackGuard([]string{"*.hooks.internal"})
	g.resolve = func(_ context.Context, host string) ([]net.IP, error) {
		switch host {
		case "localhost":
			return []net.IP{net.ParseIP("10.0.0.1")}, nil // a hostile /etc/hosts
		case "meta.hooks.internal":
			return []net.IP{net.ParseIP("169.254.169.254")}, nil
		case "ok.hooks.internal":
			return []net.IP{net.ParseIP("127.0.0.1")}, nil
		}
		return nil, errors.New("no such host")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	for host, ok := range map[string]bool{"localhost": false, "meta.hooks.internal": false, "ok.hooks.internal": true} {
		c, err := g.dial(context.Background(), "tcp", net.JoinHostPort(host, port))
		if (err == nil) != ok {
			t.Errorf("%s: dial err %v, want allowed=%v", host, err, ok)
		}
		if err == nil {
			c.Close()
		} else if !ok && !errors.Is(err, errCallbackNotAllowed) {
			t.Errorf("%s: wrong error %v", host, err)
		}
	}
}

type cbServer struct {
	mu      sync.Mutex
	reports []Report
	srv     *httptest.Server
	fail    int // answer 500 to this many requests first
	// refuseBefore: answer 500 to reports made before it (an attempt
	// already on its way when the test changed what it waits for).
	refuseBefore time.Time
}

func newCBServer(t *testing.T) *cbServer {
	s := &cbServer{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fail > 0 {
			s.fail--
			w.WriteHeader(500)
			return
		}
		var rep Report
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil || r.Header.Get("Sluice-Delivery-Id") != rep.DeliveryID {
			w.WriteHeader(400)
			return
		}
		if rep.ReportedAt.Before(s.refuseBefore) {
			w.WriteHeader(500)
			return
		}
		s.reports = append(s.reports, rep)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// reported tells whether a report for the message id arrived.
func (s *cbServer) reported(id string) bool {
	_, ok := s.byID()[id]
	return ok
}

func (s *cbServer) byID() map[string]Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]Report{}
	for _, r := range s.reports {
		m[r.ID] = r // de-duplicate by message id / delivery id
	}
	return m
}

func TestCallbacksPerOutcomeAndAcrossRestart(t *testing.T) {
	cbs := newCBServer(t)
	cbs.fail = 2 // the first attempts fail: retried
	mem := &memSink{}
	mem.setFail(func(msgs []sink.Message) error {
		for _, m := range msgs {
			if string(m.Value) == "poison" {
				return sink.Permanent(errors.New("record invalid"))
			}
		}
		return nil
	})
	dir := t.TempDir()
	opts := Options{CallbackBackoff: 5 * time.Millisecond, Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}}
	ta := startAgent(t, dir, opts)
	hdr := map[string]string{"Sluice-Callback": cbs.srv.URL + "/cb"}
	ok := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("fine"), hdr).ids[0]
	bad := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("poison"), hdr).ids[0]
	do(t, "POST", ta.url+"/v1/topics/t", "", []byte("no callback"), nil)
	waitFor(t, "two reports", func() bool { return len(cbs.byID()) == 2 })
	reps := cbs.byID()
	if r := reps[ok]; r.Status != "delivered" || r.Sinks["mem"].Status != "delivered" || r.DeliveryID == "" || r.Topic != "t" {
		t.Fatalf("delivered report %+v", r)
	}
	if r := reps[bad]; r.Status != "failed" || !strings.Contains(r.Error, "record invalid") {
		t.Fatalf("failed report %+v", r)
	}
	if r := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("x"), map[string]string{"Sluice-Callback": "http://169.254.169.254/"}); r.status != 400 || r.code != "callback_not_allowed" {
		t.Fatalf("metadata endpoint: %+v", r)
	}

	// Push while the sink is down, restart, deliver: the report comes.
	mem.setFail(func([]sink.Message) error { return errTransient })
	later := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("later"), hdr).ids[0]
	ta.stop(t)
	mem.setFail(nil)
	startAgent(t, dir, opts)
	waitFor(t, "the report after restart", func() bool { _, ok := cbs.byID()[later]; return ok })
	if r := cbs.byID()[later]; r.Status != "delivered" || r.DeliveryID != "cb-"+later {
		t.Fatalf("report after restart %+v", r)
	}
}

// Runs of messages without a callback, before and after ones with it,
// let the callback cursor pass them all, and every report still comes.
func TestCallbackCursorPassesRunsWithoutCallbacks(t *testing.T) {
	cbs := newCBServer(t)
	mem := &memSink{}
	ta := startAgent(t, t.TempDir(), Options{CallbackBackoff: 5 * time.Millisecond, Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	hdr := map[string]string{"Sluice-Callback": cbs.srv.URL + "/cb", "Content-Type": "application/x-ndjson"}
	plain := map[string]string{"Content-Type": "application/x-ndjson"}
	run := []byte(strings.Repeat("plain\n", 300))
	var want []string
	for i := 0; i < 3; i++ {
		do(t, "POST", ta.url+"/v1/topics/t", "", run, plain)
		want = append(want, do(t, "POST", ta.url+"/v1/topics/t", "", []byte("a\nb\n"), hdr).ids...)
	}
	do(t, "POST", ta.url+"/v1/topics/t", "", run, plain)
	last := ta.sp.LastSeq()
	waitFor(t, "every report and the cursor at the tail", func() bool {
		return len(cbs.byID()) == len(want) && ta.a.cb.cursor.Acked() == last
	})
	for _, id := range want {
		if r := cbs.byID()[id]; r.Status != "delivered" {
			t.Fatalf("report for %s: %+v", id, r)
		}
	}
}
