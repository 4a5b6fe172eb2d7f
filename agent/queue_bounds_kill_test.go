package agent

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// Bulk at the bounds: 1000 messages in one NDJSON push, one pull
// of max 1000, 1000 receipts nacked with a delay in one call (one log
// record), then a kill -9: none comes back before the delay; 1001 receipts
// are refused whole.
func TestQueueBulkAtTheBoundsSurvivesKill9(t *testing.T) {
	dir := t.TempDir()
	so := spool.Options{MaxBytes: 256 << 20, CursorSyncInterval: time.Hour}
	ta := startAgentSpool(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q"}), so)
	var b strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&b, "{\"value\":{\"n\":%d}}\n", i)
	}
	r := do(t, "POST", ta.url+"/v1/topics/t", "application/x-ndjson", []byte(b.String()), nil)
	if r.status/100 != 2 || len(r.ids) != 1000 {
		t.Fatalf("bulk push: %d %s %d ids", r.status, r.code, len(r.ids))
	}
	var got []pulled
	waitFor(t, "1000 pulled", func() bool {
		got = append(got, qcall(t, ta.url, "q", "pull", `{"max":1000}`).Messages...)
		return len(got) >= 1000
	})
	if len(got) != 1000 {
		t.Fatalf("pulled %d", len(got))
	}
	rs := receipts(got)
	if x := qcall(t, ta.url, "q", "nack", map[string]any{"receipts": append(rs, rs[0]), "delay": "1h"}); x.status != 400 {
		t.Fatalf("1001 receipts: %d", x.status)
	}
	if x := qcall(t, ta.url, "q", "nack", map[string]any{"receipts": rs, "delay": "1h"}); x.Nacked != 1000 {
		t.Fatalf("nack 1000: %+v", x.status)
	}
	img := crashImage(t, dir)
	ta.stop(t)
	ta = startAgentSpool(t, img, withQueues(t, img, Options{}, QueueSpec{Name: "q"}), so)
	x := qcall(t, ta.url, "q", "pull", `{"max":1000,"wait":"1s"}`)
	if len(x.Messages) != 0 {
		t.Fatalf("%d nacked (1h) messages back at once after kill -9", len(x.Messages))
	}
}
