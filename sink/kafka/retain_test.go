package kafka

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluiceio/sluice/sink"
)

// A cancelled Write returns while kafka-go still holds its batch (queued
// behind a stuck request to the same partition) and sends it later. The
// caller may reuse its buffers as soon as Write returns: what lands must
// be what was written, not what the buffers hold by then.
func TestCancelledWriteDoesNotRetainCallerMemory(t *testing.T) {
	c, addr := newCluster(t, kfake.SeedTopics(1, "r"))
	var produces atomic.Int32
	stuck := make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if produces.Add(1) == 1 {
			close(stuck)
			return nil, nil, true // the first produce never gets an answer
		}
		return nil, nil, false
	})
	w := newWriter(t, addr, Options{WriteTimeout: 500 * time.Millisecond})

	// A: stuck on the broker; its caller gives up.
	ctxA, cancelA := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	go func() { errA <- w.Write(ctxA, testMsgs("r", "a", 1, 1)) }()
	<-stuck
	cancelA()
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Fatalf("write A: %v", err)
	}

	// B: queued behind A inside kafka-go; its caller gives up too.
	b := testMsgs("r", "b", 5, 1)
	want := make([][]byte, len(b))
	for i := range b {
		b[i].Value = bytes.Repeat([]byte{byte('A' + i)}, 100)
		want[i] = bytes.Clone(b[i].Value)
	}
	ctxB, cancelB := context.WithCancel(context.Background())
	errB := make(chan error, 1)
	go func() { errB <- w.Write(ctxB, b) }()
	queued := int64(0)
	for queued < 2 { // A's and B's batches were handed to their partition queue
		queued += w.kw.Stats().BatchQueueTime.Count
		time.Sleep(time.Millisecond)
	}
	cancelB()
	if err := <-errB; err == nil || sink.IsPermanent(err) {
		t.Fatalf("write B: %v, want a transient error", err)
	}
	for i := range b { // the caller reuses its memory
		for j := range b[i].Value {
			b[i].Value[j] = 'X'
		}
		b[i].Key[0] = 'X'
	}

	// A times out, then kafka-go sends B.
	recs := byID(t, consume(t, addr, "r", len(b)))
	for i, m := range b {
		r, ok := recs[m.ID]
		if !ok {
			t.Fatalf("%s never landed", m.ID)
		}
		if !bytes.Equal(r.Value, want[i]) || r.Key[0] == 'X' {
			t.Errorf("%s landed as %q/%q: the sink sent the caller's reused memory", m.ID, r.Key, r.Value[:10])
		}
	}
}
