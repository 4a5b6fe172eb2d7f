package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/spool"
)

// waitTopic waits until mem received a message of topic; the bound is a
// liveness bound, not a timing claim.
func waitTopic(t *testing.T, mem *memSink, topic string, why func() string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range mem.messages() {
			if m.Topic == topic {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("topic %s not delivered in 15 s: %s", topic, why())
}

// unwritableDeadLetters is a dead-letter log that refuses every dead letter
// of a 4 KiB message (its records are capped at 1 KiB).
func unwritableDeadLetters(t *testing.T, dir string) *spool.Spool {
	t.Helper()
	dl, err := spool.Open(filepath.Join(dir, "deadletter"), spool.Options{Logger: quiet(), FullPolicy: spool.DropOldest, MaxRecordBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	return dl
}

// Guarantee 5: a record past the sink's max age whose dead letter the log
// cannot take holds its own topic, not the sink's other topics (it used to
// be dead-lettered by the reader, which then read nothing more).
func TestUnwritableExpiredDeadLetterHoldsOnlyItsTopic(t *testing.T) {
	dir := t.TempDir()
	mem := &memSink{}
	ta := startAgent(t, dir, Options{DeadLetter: unwritableDeadLetters(t, dir), Sinks: []SinkSpec{{
		Name: "mem", Sink: mem.sink(), MaxAge: time.Hour,
		RetryMin: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond,
	}}})
	old := appendMsg(nil, &Msg{Time: time.Now().Add(-2 * time.Hour).UnixNano(), Partition: sink.NoPartition,
		Topic: "a", Sinks: []string{"mem"}, Value: bytes.Repeat([]byte("x"), 4096)})
	if _, err := ta.sp.Append(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	r := do(t, "POST", ta.url+"/v1/topics/b", "", []byte("other topic"), nil)
	if r.status != 202 {
		t.Fatalf("push: %+v", r)
	}
	waitTopic(t, mem, "b", func() string { return fmt.Sprintf("status %+v", getStatus(t, ta, r.ids[0])) })
}

// Guarantee 5 and the forwarder's memory bound: lanes stuck on a dead sink
// keep their retried message's record number, not its bytes, so however
// many topics are stuck the reader goes on for a healthy one (20 MiB of
// stuck messages used to exceed the 16 MiB budget and stop the reader).
func TestManyStuckTopicsDoNotStopAHealthyTopic(t *testing.T) {
	mem := &memSink{}
	mem.setFail(func(msgs []sink.Message) error {
		if strings.HasPrefix(msgs[0].Topic, "stuck") {
			return errTransient
		}
		return nil
	})
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{
		Name: "mem", Sink: mem.sink(), RetryMin: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond,
	}}})
	pushStuck(t, ta, 40, 512<<10) // 20 MiB > the 16 MiB budget
	r := do(t, "POST", ta.url+"/v1/topics/ok", "", []byte("healthy"), nil)
	if r.status != 202 {
		t.Fatalf("push: %+v", r)
	}
	f := ta.a.fwds[0]
	waitTopic(t, mem, "ok", func() string { return fmt.Sprintf("forwarder holds %d bytes of a %d budget", f.heldBytes(), f.budget) })
	// Once the sink takes them, every stuck message arrives, read again
	// from the spool.
	mem.setFail(nil)
	waitFor(t, "stuck topics delivered", func() bool { return len(mem.messages()) == 41 })
	for _, m := range mem.messages() {
		if strings.HasPrefix(m.Topic, "stuck") && len(m.Value) != 512<<10 {
			t.Fatalf("%s: %d bytes after reload, want %d", m.Topic, len(m.Value), 512<<10)
		}
	}
}

// The same with messages the sink refuses for good and a dead-letter log
// that cannot take them: each such lane waits, evicted, and a healthy topic
// still flows.
func TestManyUnwritableDeadLettersDoNotStopAHealthyTopic(t *testing.T) {
	dir := t.TempDir()
	mem := &memSink{}
	mem.setFail(func(msgs []sink.Message) error {
		if strings.HasPrefix(msgs[0].Topic, "stuck") {
			return sink.Permanent(errors.New("refused"))
		}
		return nil
	})
	ta := startAgent(t, dir, Options{DeadLetter: unwritableDeadLetters(t, dir), Sinks: []SinkSpec{{
		Name: "mem", Sink: mem.sink(), RetryMin: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond,
	}}})
	pushStuck(t, ta, 40, 512<<10)
	r := do(t, "POST", ta.url+"/v1/topics/ok", "", []byte("healthy"), nil)
	if r.status != 202 {
		t.Fatalf("push: %+v", r)
	}
	f := ta.a.fwds[0]
	waitTopic(t, mem, "ok", func() string { return fmt.Sprintf("forwarder holds %d bytes of a %d budget", f.heldBytes(), f.budget) })
	if !f.isFailing() {
		t.Fatal("sink with lanes held by unwritable dead letters is not shown failing")
	}
}

func pushStuck(t *testing.T, ta *testAgent, n, size int) {
	t.Helper()
	val := bytes.Repeat([]byte("x"), size)
	for i := 0; i < n; i++ {
		if r := do(t, "POST", ta.url+fmt.Sprintf("/v1/topics/stuck%d", i), "", val, nil); r.status != 202 {
			t.Fatalf("push %d: %+v", i, r)
		}
	}
}
