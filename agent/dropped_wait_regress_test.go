package agent

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/sluiceio/sluice/sink"
)

// Guarantee 3/4 (drop_oldest is an explicit way out for a message) and
// guarantee 5: a lane waiting for a dead letter the log cannot take keeps
// retrying that dead letter after the sink's drop_oldest policy dropped the
// message (dropThrough marks it dropped, but deadLetterUntilWritten never
// looks at that; reload finds the record still in the spool). The dropped
// message keeps its topic stopped and the sink failing: later messages of
// the topic are never delivered.
func TestDroppedMessageReleasesItsWaitingLane(t *testing.T) {
	dir := t.TempDir()
	mem := &memSink{}
	mem.setFail(func(msgs []sink.Message) error {
		for _, m := range msgs {
			if len(m.Value) > 2048 {
				return sink.Permanent(errors.New("review: record too large"))
			}
		}
		return nil
	})
	ta := startAgent(t, dir, Options{DeadLetter: unwritableDeadLetters(t, dir), Sinks: []SinkSpec{{
		Name: "mem", Sink: mem.sink(), MaxBacklogBytes: 8192, BacklogPolicy: "drop_oldest",
	}}})
	big := do(t, "POST", ta.url+"/v1/topics/a", "", bytes.Repeat([]byte("x"), 4096), nil)
	if big.status != 202 {
		t.Fatalf("push: %+v", big)
	}
	waitFor(t, "lane waiting on the dead letter", func() bool { return ta.a.dlStuck.count("mem") == 1 })
	// Other traffic takes the sink over its cap: the policy drops the big
	// message (the oldest).
	for i := range 40 {
		if r := do(t, "POST", ta.url+"/v1/topics/b", "", bytes.Repeat([]byte("o"), 500), nil); r.status != 202 {
			t.Fatalf("push %d: %+v", i, r)
		}
	}
	waitFor(t, "the big message dropped", func() bool { return getStatus(t, ta, big.ids[0]).Status == "dropped" })
	next := do(t, "POST", ta.url+"/v1/topics/a", "", []byte("small"), nil)
	if next.status != 202 {
		t.Fatalf("push: %+v", next)
	}
	waitTopicValue(t, mem, "small", func() string {
		return fmt.Sprintf("big message %q, lanes waiting on a dead letter: %d, next message %q",
			getStatus(t, ta, big.ids[0]).Status, ta.a.dlStuck.count("mem"), getStatus(t, ta, next.ids[0]).Status)
	})
}

func waitTopicValue(t *testing.T, mem *memSink, value string, why func() string) {
	t.Helper()
	for range 300 { // 15 s liveness bound
		for _, m := range mem.messages() {
			if string(m.Value) == value {
				return
			}
		}
		sleepCtx(t.Context(), 50e6)
	}
	t.Fatalf("%q not delivered in 15 s: %s", value, why())
}
