package agent

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// Regression (was broken before the reader left expired records of spilled
// lanes to the catch-up): exactly-once handling per run / guarantee 3 ("only it goes to the
// dead-letter log") and 8 (one identity, one dead letter). A record of a
// spilled lane that is already older than MaxAge when the reader reads it
// is dead-lettered by the reader (forwarder.go dispatch: the max-age check
// comes before the l.spilled check), and then the catch-up reader
// (forwarder_spill.go catchUp) reads it again from the spool and queues it,
// where prune dead-letters it a second time: two dead letters (two copies
// on the dead-letter topic) for one message in one run.
func TestExpiredRecordOfSpilledLaneDeadLetteredOnce(t *testing.T) {
	var failA atomic.Bool
	failA.Store(true)
	mem := &memSink{}
	mem.setFail(func(msgs []sink.Message) error {
		for _, m := range msgs {
			if m.Topic == "a" && failA.Load() {
				return errTransient
			}
		}
		return nil
	})
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{
		Name: "mem", Sink: mem.sink(), MaxAge: time.Hour, DeadLetterTopic: "dlq",
		RetryMin: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond,
	}}})
	// The lane of topic a gets stuck and spills.
	do(t, "POST", ta.url+"/v1/topics/a", "", []byte("first"), nil)
	f := ta.a.fwds[0]
	waitFor(t, "lane a spilled", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		l := f.lanes["a"]
		return l != nil && l.spilled && l.stuck
	})
	// A record of topic a that is already past the sink's max age when the
	// reader reads it (as after a restart with a backlog).
	old := appendMsg(nil, &Msg{Time: time.Now().Add(-2 * time.Hour).UnixNano(), Partition: sink.NoPartition, Topic: "a", Sinks: []string{"mem"}, Value: []byte("old")})
	if _, err := ta.sp.Append(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	dlq := func() int {
		n := 0
		for _, m := range mem.messages() {
			if m.Topic == "dlq" {
				n++
			}
		}
		return n
	}
	// The reader reads it (and must leave it to the spilled lane).
	waitFor(t, "the reader past the record", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.readUpTo >= ta.sp.LastSeq()
	})
	// The sink comes back: the lane moves and the catch-up reader refills it.
	failA.Store(false)
	waitFor(t, "first delivered", func() bool {
		for _, m := range mem.messages() {
			if m.Topic == "a" && string(m.Value) == "first" {
				return true
			}
		}
		return false
	})
	waitFor(t, "cursor caught up", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return !f.lanes["a"].spilled && f.cursor.Acked() >= f.readUpTo
	})
	time.Sleep(200 * time.Millisecond)
	if n := dlq(); n != 1 {
		t.Fatalf("one expired message was dead-lettered %d times in one run", n)
	}
}
