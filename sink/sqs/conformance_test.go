package sqs

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"testing"

	sqsserver "github.com/sluiceio/sluice/internal/testserver/sqs"
	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/sinktest"
)

// TestConformance runs sink/sinktest against ElasticMQ, on a standard queue
// and on a FIFO queue (order per key: the message group). A standard queue
// keeps no order (ElasticMQ, like SQS, stores the entries of one batch in
// any order), so for it Read puts what arrived back into the order in which
// it was written; everything else is compared as it arrived. Read receives
// through ReceiveMessage and decodes with Decode. Stall pauses the server
// process (SIGSTOP).
func TestConformance(t *testing.T) {
	srv := sqsserver.Start(t, sqsserver.Options{})
	c := newClient(srv.Endpoint(), testCreds)
	for _, fifo := range []bool{false, true} {
		name := "standard"
		caps := sinktest.Caps{}
		if fifo {
			name, caps = "fifo", sinktest.Caps{OrderPerKey: true}
		}
		t.Run(name, func(t *testing.T) {
			var (
				mu      sync.Mutex
				url     string
				read    []sink.Message
				written = map[string]int{} // id -> position in write order
			)
			sinktest.Run(t, sinktest.Harness{
				New: func(t *testing.T) sink.Sink {
					mu.Lock()
					defer mu.Unlock()
					url, read, written = newQueue(t, c, fifo), nil, map[string]int{}
					w := newWriter(t, Options{URL: url, Endpoint: srv.Endpoint()})
					return orderSink{w, func(msgs []sink.Message) {
						mu.Lock()
						defer mu.Unlock()
						for _, m := range msgs {
							if _, ok := written[m.ID]; !ok {
								written[m.ID] = len(written)
							}
						}
					}}
				},
				Read: func(t *testing.T) []sink.Message {
					mu.Lock()
					defer mu.Unlock()
					read = append(read, drain(t, c, url)...)
					got := sinktest.Clone(read)
					if !fifo {
						slices.SortStableFunc(got, func(a, b sink.Message) int { return cmp.Compare(written[a.ID], written[b.ID]) })
					}
					return got
				},
				Stall: func(t *testing.T) func() {
					srv.Pause()
					var once sync.Once
					return func() { once.Do(srv.Resume) }
				},
				Caps: caps,
			})
		})
	}
}

// orderSink records the ids it is asked to write, in order.
type orderSink struct {
	*Writer
	record func([]sink.Message)
}

func (o orderSink) Write(ctx context.Context, msgs []sink.Message) error {
	o.record(msgs)
	return o.Writer.Write(ctx, msgs)
}
