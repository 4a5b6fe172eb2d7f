package sqs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sluiceio/sluice/sink"
)

// These tests answer the sink with SendMessageBatch responses in SQS's JSON
// protocol that no emulator produces on demand (throttled or internal
// per-entry failures, an answer that leaves entries out, request-level
// codes), through the real SDK client and its deserializers.

type wireEntry struct {
	ID   string `json:"Id"`
	Body string `json:"MessageBody"`
}

// wireServer answers each SendMessageBatch with answer(call, entries).
type wireServer struct {
	mu     sync.Mutex
	calls  [][]wireEntry
	answer func(call int, entries []wireEntry) (status int, header http.Header, body string)
}

func (s *wireServer) start(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") != "AmazonSQS.SendMessageBatch" {
			http.Error(w, "unexpected "+r.Header.Get("X-Amz-Target"), 400)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var in struct{ Entries []wireEntry }
		if err := json.Unmarshal(b, &in); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		s.mu.Lock()
		call := len(s.calls)
		s.calls = append(s.calls, in.Entries)
		s.mu.Unlock()
		status, h, body := s.answer(call, in.Entries)
		for k, v := range h {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// results builds a 200 answer: every entry Successful unless fail names a
// failure for its body.
func results(entries []wireEntry, fail func(body string) (code string, sender bool, ok bool)) string {
	type ok struct {
		ID  string `json:"Id"`
		MID string `json:"MessageId"`
	}
	type bad struct {
		ID     string `json:"Id"`
		Code   string `json:"Code"`
		Sender bool   `json:"SenderFault"`
		Msg    string `json:"Message"`
	}
	var out struct {
		Successful []ok  `json:"Successful"`
		Failed     []bad `json:"Failed"`
	}
	out.Successful, out.Failed = []ok{}, []bad{}
	for _, e := range entries {
		if code, sender, failed := fail(e.Body); failed {
			if code != "" {
				out.Failed = append(out.Failed, bad{e.ID, code, sender, "refused"})
			}
			continue
		}
		out.Successful = append(out.Successful, ok{e.ID, "mid-" + e.ID})
	}
	b, _ := json.Marshal(out)
	return string(b)
}

func wireWriter(t *testing.T, endpoint string, fifo bool) *Writer {
	url := endpoint + "/000000000000/wire"
	if fifo {
		url += ".fifo"
	}
	return newWriter(t, Options{URL: url, Endpoint: endpoint})
}

func textMsgs(n int) []sink.Message {
	ms := msgs("w-", n, 10)
	for i := range ms {
		ms[i].Value = []byte(fmt.Sprintf("m%d", i))
	}
	return ms
}

func TestWirePerEntry(t *testing.T) {
	// Entry by entry: throttled and internal failures are retried, a
	// sender-fault code is Permanent, an entry the answer leaves out is
	// never taken as delivered, and a missing queue reported per entry (as
	// one emulator does) is retried.
	fails := map[string]struct {
		code   string
		sender bool
	}{
		"m1": {"RequestThrottled", false},
		"m2": {"InternalError", false},
		"m3": {"InvalidMessageContents", true},
		"m4": {"", false}, // left out of the answer
		"m5": {"AWS.SimpleQueueService.NonExistentQueue", true},
		"m6": {"KMS.AccessDeniedException", true},
	}
	want := map[string]struct {
		reason    string
		permanent bool
	}{
		"m1": {ReasonThrottled, false}, "m2": {ReasonServer, false}, "m3": {ReasonInvalid, true},
		"m4": {ReasonNoResult, false}, "m5": {ReasonNoQueue, false}, "m6": {ReasonAuth, false},
	}
	s := &wireServer{answer: func(_ int, es []wireEntry) (int, http.Header, string) {
		return 200, nil, results(es, func(body string) (string, bool, bool) {
			f, ok := fails[body]
			return f.code, f.sender, ok
		})
	}}
	w := wireWriter(t, s.start(t), false)
	batch := textMsgs(20)
	errs := mustBatchError(t, w.Write(context.Background(), batch), 20)
	for i, e := range errs {
		body := string(batch[i].Value)
		wt, special := want[body]
		switch {
		case !special && e != nil:
			t.Errorf("%s: %v, want delivered", body, e)
		case !special && !batch[i].Delivered:
			t.Errorf("%s: Delivered not set", body)
		case special && (e == nil || sink.Reason(e) != wt.reason || sink.IsPermanent(e) != wt.permanent):
			t.Errorf("%s: %v (reason %s, permanent %v), want reason %s permanent %v", body, e, sink.Reason(e), sink.IsPermanent(e), wt.reason, wt.permanent)
		}
	}
	if len(s.calls) != 2 {
		t.Fatalf("%d requests, want 2 (10 + 10 entries)", len(s.calls))
	}
}

func TestWireRequestErrors(t *testing.T) {
	jsonErr := func(typ, query string) (http.Header, string) {
		h := http.Header{}
		if query != "" {
			h.Set("x-amzn-query-error", query)
		}
		return h, fmt.Sprintf(`{"__type":"com.amazonaws.sqs#%s","message":"nope"}`, typ)
	}
	for _, tc := range []struct {
		name, typ, query string
		status           int
		reason           string
	}{
		{"Throttled", "RequestThrottled", "", 400, ReasonThrottled},
		{"QueueMissing", "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue;Sender", 400, ReasonNoQueue},
		{"AccessDenied", "AccessDeniedException", "", 400, ReasonAuth},
		{"ExpiredToken", "ExpiredToken", "", 403, ReasonAuth},
		{"BadSignature", "SignatureDoesNotMatch", "", 403, ReasonAuth},
		{"Internal", "InternalError", "", 500, ReasonServer},
		{"Unavailable", "ServiceUnavailable", "", 503, ReasonServer},
		{"UnknownClientFault", "SomethingNew", "", 400, ReasonOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &wireServer{answer: func(int, []wireEntry) (int, http.Header, string) {
				h, b := jsonErr(tc.typ, tc.query)
				return tc.status, h, b
			}}
			w := wireWriter(t, s.start(t), false)
			err := w.Write(context.Background(), textMsgs(5))
			if tc.reason == ReasonOther {
				// Not a code about content: retried, never split or dead-lettered.
				if err == nil || sink.IsPermanent(err) {
					t.Fatalf("Write = %v, want transient", err)
				}
				return
			}
			checkTransient(t, err, tc.reason)
		})
	}
}

func TestWireSplitsRequestLevelContentError(t *testing.T) {
	// BatchRequestTooLong for the whole request: SQS does not say which
	// entry; the sink sends them one by one and dead-letters only the one
	// refused alone. Nothing accepted is sent twice.
	s := &wireServer{}
	s.answer = func(_ int, es []wireEntry) (int, http.Header, string) {
		for _, e := range es {
			if e.Body == "m3" {
				return 400, nil, `{"__type":"com.amazonaws.sqs#BatchRequestTooLong","message":"too long"}`
			}
		}
		return 200, nil, results(es, func(string) (string, bool, bool) { return "", false, false })
	}
	w := wireWriter(t, s.start(t), false)
	errs := mustBatchError(t, w.Write(context.Background(), textMsgs(6)), 6)
	for i, e := range errs {
		if (i == 3) != (e != nil) || (i == 3 && (!sink.IsPermanent(e) || sink.Reason(e) != ReasonTooLarge)) {
			t.Errorf("message %d: %v", i, e)
		}
	}
	sent := map[string]int{}
	for _, c := range s.calls {
		if len(c) == 1 {
			sent[c[0].Body]++
		}
	}
	if len(s.calls) != 7 || len(sent) != 6 {
		t.Fatalf("requests %v, want one of 6 entries then 6 of one", s.calls)
	}
}

func TestWireFIFOGroupOrder(t *testing.T) {
	// FIFO: requests go one after the other; once a message of a group
	// failed, later messages of that group are not sent in this Write, so a
	// retry cannot put them behind their successors.
	s := &wireServer{answer: func(_ int, es []wireEntry) (int, http.Header, string) {
		return 200, nil, results(es, func(body string) (string, bool, bool) {
			return "RequestThrottled", false, body == "m2"
		})
	}}
	w := wireWriter(t, s.start(t), true)
	batch := textMsgs(30) // keys key-0 .. key-9 in turn: m2, m12, m22 share key-2
	errs := mustBatchError(t, w.Write(context.Background(), batch), 30)
	for i, e := range errs {
		k := string(batch[i].Key)
		switch {
		case i == 2 && sink.Reason(e) != ReasonThrottled:
			t.Errorf("m2: %v", e)
		case i > 2 && k == "key-2" && sink.Reason(e) != ReasonNotSent:
			t.Errorf("m%d (same group, later): %v, want reason %s", i, e, ReasonNotSent)
		case k != "key-2" && e != nil:
			t.Errorf("m%d: %v, want delivered", i, e)
		}
	}
	for _, c := range s.calls {
		for _, e := range c {
			if e.Body == "m12" || e.Body == "m22" {
				t.Fatalf("%s was sent after m2 of its group failed", e.Body)
			}
		}
	}
	if !strings.HasSuffix(w.cfg.URL, ".fifo") {
		t.Fatal("not a FIFO queue")
	}
}

func TestWireHaltsAfterWholeRequestFailure(t *testing.T) {
	// A request that fails as a whole (here 503) stops the Write: the
	// requests not yet sent are not sent, so a hung or dead server costs
	// one request per Write, and the batch is retried as a whole.
	for _, fifo := range []bool{false, true} {
		s := &wireServer{answer: func(int, []wireEntry) (int, http.Header, string) {
			return 503, nil, `{"__type":"com.amazonaws.sqs#ServiceUnavailable","message":"down"}`
		}}
		w := wireWriter(t, s.start(t), fifo)
		w.cfg.MaxInFlight = 1
		checkTransient(t, w.Write(context.Background(), textMsgs(100)), ReasonServer)
		if len(s.calls) != 1 {
			t.Fatalf("fifo %v: %d requests after the first failed, want 1", fifo, len(s.calls))
		}
	}
}
