package httpsink

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/sinktest"
)

// receiver is an httptest upstream that decodes the /v1/messages batch
// format with the same rules as the sluice agent (unknown fields, both or
// neither of value and value_b64, empty or sluice-id header names: 400;
// value bytes kept exactly; headers sorted by name) and keeps what arrived.
type receiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	got      []sink.Message
	requests []*http.Request // headers of every request, in order
	bodies   [][]byte        // raw bodies as sent (still gzipped when they were)
	// answer, when set, answers a request instead of decoding it; it is
	// called with the request number (0-based).
	answer func(n int, w http.ResponseWriter, r *http.Request) bool
	stall  chan struct{} // non-nil: requests wait until it is closed
}

func newReceiver(t testing.TB) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) url() string { return rc.srv.URL + "/v1/messages" }

func (rc *receiver) setAnswer(f func(n int, w http.ResponseWriter, r *http.Request) bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.answer = f
}

func (rc *receiver) messages() []sink.Message {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return sinktest.Clone(rc.got)
}

func (rc *receiver) requestCount() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.requests)
}

func (rc *receiver) request(i int) (*http.Request, []byte) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.requests[i], rc.bodies[i]
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	// Read the body first: the server notices a client that went away
	// (r.Context() done) only once the body was read.
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	rc.mu.Lock()
	stall, answer, n := rc.stall, rc.answer, len(rc.requests)
	rc.requests = append(rc.requests, r.Clone(r.Context()))
	rc.bodies = append(rc.bodies, raw)
	rc.mu.Unlock()
	if stall != nil {
		select {
		case <-stall:
		case <-r.Context().Done():
			return
		}
	}
	if answer != nil && answer(n, w, r) {
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/messages" {
		http.Error(w, `{"error":"not found","code":"not_found"}`, http.StatusNotFound)
		return
	}
	body := raw
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err == nil {
			body, err = io.ReadAll(zr)
		}
		if err != nil {
			http.Error(w, `{"error":"bad gzip","code":"bad_request"}`, http.StatusBadRequest)
			return
		}
	}
	msgs, err := decodeBatch(body)
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":%q,"code":"bad_request"}`, err.Error())
		return
	}
	rc.mu.Lock()
	rc.got = append(rc.got, msgs...)
	rc.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"ids":[]}`)
}

// decodeBatch follows agent/parse.go's parseBatch.
func decodeBatch(body []byte) ([]sink.Message, error) {
	var req struct {
		Messages []struct {
			Topic    string            `json:"topic"`
			Key      *string           `json:"key"`
			Value    json.RawMessage   `json:"value"`
			ValueB64 *string           `json:"value_b64"`
			Headers  map[string]string `json:"headers"`
			ID       string            `json:"id"`
		} `json:"messages"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data")
	}
	if len(req.Messages) == 0 {
		return nil, fmt.Errorf("no messages")
	}
	out := make([]sink.Message, len(req.Messages))
	for i, bm := range req.Messages {
		m := &out[i]
		m.Topic, m.ID, m.Partition = bm.Topic, bm.ID, sink.NoPartition
		switch {
		case bm.Value != nil && bm.ValueB64 != nil:
			return nil, fmt.Errorf("message %d: both value and value_b64", i)
		case bm.ValueB64 != nil:
			v, err := base64.StdEncoding.DecodeString(*bm.ValueB64)
			if err != nil {
				return nil, fmt.Errorf("message %d: %v", i, err)
			}
			m.Value = v
		case bm.Value != nil:
			m.Value = bm.Value
		default:
			return nil, fmt.Errorf("message %d: no value", i)
		}
		if bm.Key != nil {
			m.Key = []byte(*bm.Key)
		}
		names := make([]string, 0, len(bm.Headers))
		for k := range bm.Headers {
			if k == "" || strings.EqualFold(k, sink.IDHeader) {
				return nil, fmt.Errorf("message %d: header name %q not allowed", i, k)
			}
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			m.Headers = append(m.Headers, sink.Header{Key: k, Value: []byte(bm.Headers[k])})
		}
	}
	return out, nil
}
