package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/syncbuf"
)

func checkLatency(t *testing.T, l Latency) {
	t.Helper()
	if l.Count == 0 {
		t.Fatal("no latency recorded")
	}
	if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Errorf("latency percentiles out of order: %+v", l)
	}
	if l.Mean <= 0 || l.Mean > l.Max {
		t.Errorf("mean %v outside (0, max %v]", l.Mean, l.Max)
	}
}

// TestRunCounts runs a fixed count in every mode against a fake agent that
// rejects every 7th request, and checks the report against what the agent
// saw; then verifies the acked ids against the agent's arrival order.
func TestRunCounts(t *testing.T) {
	for _, tc := range []struct {
		mode  Mode
		batch int
		unix  bool
	}{
		{ModeSingle, 0, false},
		{ModeNDJSON, 10, false},
		{ModeJSON, 7, false},
		{ModeNDJSON, 25, true},
	} {
		name := string(tc.mode)
		if tc.unix {
			name += "-unix"
		}
		t.Run(name, func(t *testing.T) {
			f := &fakeAgent{rejectEvery: 7}
			url := f.serve(t, tc.unix)
			const count = 600
			rep, err := Run(context.Background(), Config{
				URL: url, Mode: tc.mode, Batch: tc.batch, Size: 200, Connections: 4,
				Count: count, Topics: 3, Keys: 12, Verify: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			f.check(t)
			f.mu.Lock()
			defer f.mu.Unlock()

			if rep.Messages != count {
				t.Errorf("messages sent = %d, want %d", rep.Messages, count)
			}
			if rep.Requests != int64(f.requests) {
				t.Errorf("requests = %d, agent saw %d", rep.Requests, f.requests)
			}
			batch := max(tc.batch, 1)
			if want := int64((count + batch - 1) / batch); rep.Requests != want {
				t.Errorf("requests = %d, want %d", rep.Requests, want)
			}
			if f.rejected == 0 {
				t.Fatal("the agent rejected nothing; the test needs some errors")
			}
			if got := rep.Errors["503 spool_full"]; got != int64(f.rejected) || len(rep.Errors) != 1 {
				t.Errorf("errors = %v, want 503 spool_full: %d", rep.Errors, f.rejected)
			}
			if rep.ErrorSamples["503 spool_full"] != "fake spool_full" {
				t.Errorf("error sample = %q", rep.ErrorSamples["503 spool_full"])
			}
			if rep.Acked != int64(f.accepted) {
				t.Errorf("acked = %d, agent accepted %d", rep.Acked, f.accepted)
			}
			if rep.Latency.Count != uint64(f.requests-f.rejected) {
				t.Errorf("latency count = %d, want %d acked requests", rep.Latency.Count, f.requests-f.rejected)
			}
			checkLatency(t, rep.Latency)
			if rep.AckedBytes != rep.Acked*200 {
				t.Errorf("acked bytes = %d for %d messages of 200 bytes", rep.AckedBytes, rep.Acked)
			}
			if rep.MsgsPerSec <= 0 || rep.MBPerSec <= 0 {
				t.Errorf("throughput %v msg/s %v MB/s", rep.MsgsPerSec, rep.MBPerSec)
			}

			if len(rep.AckedIDs) != int(rep.Acked) {
				t.Fatalf("%d acked ids for %d acked messages", len(rep.AckedIDs), rep.Acked)
			}
			v := Verify(rep.AckedIDs, FilterRun(f.delivered, rep.RunID))
			if !v.OK() || v.Lost != 0 || v.Duplicates != 0 || v.Unexpected != 0 || v.Acked != f.accepted {
				t.Errorf("verify against the agent's arrival order: %+v", v)
			}
			topics := map[string]bool{}
			for _, d := range f.delivered {
				topics[d.Topic] = true
			}
			if len(topics) != 3 {
				t.Errorf("messages went to topics %v, want 3", topics)
			}
		})
	}
}

func TestRunDuration(t *testing.T) {
	f := &fakeAgent{}
	url := f.serve(t, false)
	rep, err := Run(context.Background(), Config{URL: url, Duration: 200 * time.Millisecond, Connections: 3, Batch: 5, Size: 64})
	if err != nil {
		t.Fatal(err)
	}
	f.check(t)
	if rep.Requests == 0 || rep.Requests != int64(f.requests) || rep.Acked != rep.Messages || rep.ErrorCount() != 0 {
		t.Errorf("report %+v, agent saw %d requests", rep, f.requests)
	}
	checkLatency(t, rep.Latency)
	if rep.AckedIDs != nil {
		t.Error("acked ids recorded without Verify")
	}
}

func TestRunAuthAndAck(t *testing.T) {
	f := &fakeAgent{token: "s3cret", pendingEvery: 3}
	url := f.serve(t, false)
	rep, err := Run(context.Background(), Config{URL: url, Token: "s3cret", AckDelivered: true, AckTimeout: time.Second, Count: 90, Batch: 10, Connections: 2})
	if err != nil {
		t.Fatal(err)
	}
	f.check(t)
	if rep.ErrorCount() != 0 || rep.Acked != 90 || f.ackHeader != 9 {
		t.Fatalf("errors %v, acked %d, agent saw %d Sluice-Ack headers", rep.Errors, rep.Acked, f.ackHeader)
	}
	if rep.AckStatus["pending"] != 30 || rep.AckStatus["delivered"] != 60 {
		t.Errorf("ack status = %v, want pending 30, delivered 60", rep.AckStatus)
	}

	rep, err = Run(context.Background(), Config{URL: url, Token: "wrong", Count: 20, Batch: 10, Connections: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors["401 unauthorized"] != 2 || rep.Acked != 0 {
		t.Errorf("with a wrong token: errors %v, acked %d", rep.Errors, rep.Acked)
	}
	if rep.Latency.Count != 0 || rep.Latency.Max != 0 {
		t.Errorf("latency recorded for failed requests: %+v", rep.Latency)
	}
}

// TestOpenLoopSchedule: at 200 msg/s for 1 s the schedule holds exactly 200
// one-message requests, and all of them are sent (a closed loop would send
// as many as the agent answers). No assertion depends on timing.
func TestOpenLoopSchedule(t *testing.T) {
	f := &fakeAgent{}
	url := f.serve(t, false)
	rep, err := Run(context.Background(), Config{
		URL: url, Mode: ModeSingle, Rate: 200, Duration: time.Second, Connections: 4, Grace: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.check(t)
	if rep.Scheduled != 200 || rep.Requests != 200 || rep.Missed != 0 || f.requests != 200 {
		t.Errorf("scheduled %d, sent %d, missed %d, agent saw %d; want 200 sent of 200", rep.Scheduled, rep.Requests, rep.Missed, f.requests)
	}
	checkLatency(t, rep.Latency)

	// A count bounds the schedule too: 95 messages in batches of 10 are
	// 10 requests, the last one with 5 messages.
	f2 := &fakeAgent{}
	url = f2.serve(t, false)
	rep, err = Run(context.Background(), Config{URL: url, Rate: 1000, Count: 95, Batch: 10, Connections: 3})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Scheduled != 10 || rep.Requests != 10 || rep.Messages != 95 || f2.accepted != 95 {
		t.Errorf("scheduled %d, sent %d requests with %d messages, agent accepted %d", rep.Scheduled, rep.Requests, rep.Messages, f2.accepted)
	}
}

func TestRunCancel(t *testing.T) {
	f := &fakeAgent{}
	url := f.serve(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := Run(ctx, Config{URL: url, Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests != 0 {
		t.Errorf("a cancelled run sent %d requests", rep.Requests)
	}
}

func TestRunErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := Run(context.Background(), Config{URL: "http://" + addr, Count: 1}); !errors.Is(err, ErrUnreachable) {
		t.Errorf("nothing listening: err = %v, want ErrUnreachable", err)
	}
	for _, c := range []Config{
		{Mode: "grpc"},
		{Verify: true, Keys: 4, Connections: 8},
		{URL: "https://127.0.0.1:7101"},
		{URL: "http://127.0.0.1"},
		{Topic: "no spaces"},
		{Batch: -1},
	} {
		if _, err := Run(context.Background(), c); !errors.Is(err, ErrConfig) {
			t.Errorf("Run(%+v) err = %v, want ErrConfig", c, err)
		}
	}
}

func TestProgressAndReports(t *testing.T) {
	f := &fakeAgent{rejectEvery: 5}
	url := f.serve(t, false)
	var progress syncbuf.Buffer
	rep, err := Run(context.Background(), Config{
		URL: url, Duration: 300 * time.Millisecond, Connections: 2, Batch: 4,
		Progress: &progress, ProgressInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	if len(lines) == 0 || !strings.Contains(lines[0], "msg/s") || !strings.Contains(lines[0], "p99") {
		t.Errorf("progress output %q", progress.String())
	}

	var text bytes.Buffer
	rep.WriteText(&text)
	for _, want := range []string{"throughput", "p99.9", "503 spool_full", "fake spool_full"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}

	b, err := rep.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Requests int64            `json:"requests"`
		Acked    int64            `json:"acked"`
		Errors   map[string]int64 `json:"errors"`
		Latency  struct {
			P50 float64 `json:"p50_ms"`
			P99 float64 `json:"p99_ms"`
			Max float64 `json:"max_ms"`
		} `json:"latency"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Requests != rep.Requests || got.Acked != rep.Acked || got.Errors["503 spool_full"] != rep.Errors["503 spool_full"] {
		t.Errorf("JSON %s does not match the report", b)
	}
	if !(got.Latency.P50 <= got.Latency.P99 && got.Latency.P99 <= got.Latency.Max) {
		t.Errorf("JSON latency out of order: %+v", got.Latency)
	}
}
