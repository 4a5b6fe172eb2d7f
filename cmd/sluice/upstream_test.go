package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/loadgen"
)

// upstream is an HTTP endpoint for the http sink: it decodes sluice's
// /v1/messages batches and records what it accepted. It can answer slowly,
// answer every batch with one status, or refuse (400) the batches that hold
// a poison message, which makes the agent dead-letter exactly those.
type upstream struct {
	srv      *httptest.Server
	delay    atomic.Int64 // nanoseconds slept before answering
	status   atomic.Int32 // non-zero: answer every batch with this status
	poison   atomic.Pointer[func(loadgen.Delivered) bool]
	requests atomic.Int64

	mu  sync.Mutex
	got []loadgen.Delivered
}

func newUpstream(t *testing.T) *upstream {
	r := &upstream{}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *upstream) url() string { return r.srv.URL + "/v1/messages" }

func (r *upstream) setPoison(f func(loadgen.Delivered) bool) {
	if f == nil {
		r.poison.Store(nil)
		return
	}
	r.poison.Store(&f)
}

func (r *upstream) serve(w http.ResponseWriter, req *http.Request) {
	r.requests.Add(1)
	if d := r.delay.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	if s := r.status.Load(); s != 0 {
		http.Error(w, "upstream unavailable", int(s))
		return
	}
	var body struct {
		Messages []struct {
			Topic    string          `json:"topic"`
			Key      *string         `json:"key"`
			Value    json.RawMessage `json:"value"`
			ValueB64 *string         `json:"value_b64"`
			Headers  map[string]string
			ID       string `json:"id"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
		// A sender killed mid-request: nobody reads this answer.
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	batch := make([]loadgen.Delivered, 0, len(body.Messages))
	for _, m := range body.Messages {
		v := []byte(m.Value)
		if m.ValueB64 != nil {
			v, _ = base64.StdEncoding.DecodeString(*m.ValueB64)
		}
		d := loadgen.Delivered{ID: m.ID, Topic: m.Topic, N: -1, Partition: -1, Offset: -1}
		if m.Key != nil {
			d.Key = *m.Key
		}
		if f, ok := loadgen.ParseValue(v); ok {
			d.Run, d.N = f.Run, f.N
		}
		batch = append(batch, d)
	}
	if p := r.poison.Load(); p != nil {
		for _, d := range batch {
			if (*p)(d) {
				http.Error(w, "poison message "+d.ID, http.StatusBadRequest)
				return
			}
		}
	}
	r.mu.Lock()
	r.got = append(r.got, batch...)
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (r *upstream) delivered() []loadgen.Delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]loadgen.Delivered(nil), r.got...)
}

func httpSinkEnv(spoolDir, url string) []string {
	return []string{"SLUICE_SPOOL_DIR=" + spoolDir, "SLUICE_SPOOL_SYNC=always", "SLUICE_SINKS=up", "SLUICE_UP_TYPE=http",
		"SLUICE_UP_URL=" + url, "SLUICE_UP_RETRY_MIN=10ms", "SLUICE_UP_RETRY_MAX=200ms", "SLUICE_UP_TIMEOUT=5s"}
}
