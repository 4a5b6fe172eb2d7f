package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluiceio/sluice/sink"
)

func TestWriteRoundTrip(t *testing.T) {
	_, addr := newCluster(t, kfake.SeedTopics(6, "orders"))
	set := metrics.NewSet()
	w := newWriter(t, addr, Options{Name: "main", Metrics: set})

	msgs := testMsgs("orders", "rt", 60, 7)
	msgs[3].Key = nil                                                                                        // keyless: round-robin
	msgs[4].Key = []byte{}                                                                                   // empty, not nil: hashed
	msgs[5].Partition = 4                                                                                    // explicit partition
	msgs[6].Headers = append(msgs[6].Headers, sink.Header{Key: sink.IDHeader, Value: []byte("upstream-id")}) // chained agent
	msgs[7].Value = []byte{0, 1, 2, 0xff, '\n', 0}                                                           // binary value
	msgs[8].Headers = nil
	mustWrite(t, w, msgs)

	recs := byID(t, consume(t, addr, "orders", len(msgs)))
	for i, m := range msgs {
		id := m.ID
		if i == 6 {
			id = "upstream-id"
		}
		r, ok := recs[id]
		if !ok {
			t.Fatalf("message %d (%s) not found", i, id)
		}
		if !m.Delivered || m.DeliveredPart != r.Partition || m.DeliveredOffset != r.Offset {
			t.Errorf("message %d: delivery report %v %d@%d, record %d@%d", i, m.Delivered, m.DeliveredPart, m.DeliveredOffset, r.Partition, r.Offset)
		}
		if (m.Key == nil) != (r.Key == nil) || !bytes.Equal(m.Key, r.Key) {
			t.Errorf("message %d: key %q (nil %v), record %q (nil %v)", i, m.Key, m.Key == nil, r.Key, r.Key == nil)
		}
		if !bytes.Equal(m.Value, r.Value) {
			t.Errorf("message %d: value %q, record %q", i, m.Value, r.Value)
		}
		if !r.Timestamp.Equal(m.Time) {
			t.Errorf("message %d: time %v, record %v", i, m.Time, r.Timestamp)
		}
		wantHdrs := len(m.Headers)
		if i != 6 {
			wantHdrs++
		}
		if len(r.Headers) != wantHdrs {
			t.Errorf("message %d: %d headers, want %d", i, len(r.Headers), wantHdrs)
		}
		for j, h := range m.Headers {
			if r.Headers[j].Key != h.Key || !bytes.Equal(r.Headers[j].Value, h.Value) {
				t.Errorf("message %d: header %d = %s=%q, want %s=%q", i, j, r.Headers[j].Key, r.Headers[j].Value, h.Key, h.Value)
			}
		}
		if m.Key != nil && m.Partition == sink.NoPartition {
			if want := int32(newPartitioner("murmur2").partition("orders", m.Key, nil, 6)); r.Partition != want {
				t.Errorf("message %d: partition %d, murmur2 says %d", i, r.Partition, want)
			}
		}
	}
	if r := recs[msgs[5].ID]; r.Partition != 4 {
		t.Errorf("explicit partition: got %d, want 4", r.Partition)
	}

	// Same key, same partition, push order.
	last := map[string]int64{}
	for _, m := range msgs {
		if m.Key == nil || m.Partition != sink.NoPartition {
			continue
		}
		k := fmt.Sprintf("%d/%s", m.DeliveredPart, m.Key)
		if off, ok := last[k]; ok && m.DeliveredOffset <= off {
			t.Errorf("key %q: offset %d after %d", m.Key, m.DeliveredOffset, off)
		}
		last[k] = m.DeliveredOffset
	}

	if v := metricValue(set, `sluice_sink_delivered_messages_total{sink="main"}`); v != fmt.Sprint(len(msgs)) {
		t.Errorf("delivered counter = %q", v)
	}
	if v := metricValue(set, `sluice_sink_broker_up{sink="main"}`); v != "1" {
		t.Errorf("broker_up = %q", v)
	}
	if v := metricValue(set, `sluice_sink_produce_seconds_bucket{sink="main",le="+Inf"}`); v != "1" {
		t.Errorf("produce histogram +Inf bucket = %q", v)
	}
	if v := metricValue(set, `sluice_sink_batch_messages_count{sink="main"}`); v != "1" {
		t.Errorf("batch histogram count = %q", v)
	}
}

func TestWriteEmptyAndClosed(t *testing.T) {
	_, addr := newCluster(t, kfake.SeedTopics(1, "t"))
	w := newWriter(t, addr, Options{})
	if err := w.Write(context.Background(), nil); err != nil {
		t.Fatalf("empty write: %v", err)
	}
	mustWrite(t, w, testMsgs("t", "a", 1, 1))
	ctx := context.Background()
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatalf("second close: %v", err)
	}
	err := w.Write(ctx, testMsgs("t", "b", 1, 1))
	if !errors.Is(err, ErrClosed) || sink.IsPermanent(err) || sink.Reason(err) != ReasonClosed {
		t.Fatalf("write after close: %v (reason %s)", err, sink.Reason(err))
	}
}

// A forwarder batch larger than one request for a partition goes out in
// order, request after request; a failed request stops the partition, so
// nothing after it lands before it.
func TestMultiRequestPartitionOrder(t *testing.T) {
	c, addr := newCluster(t, kfake.SeedTopics(1, "seq"))
	w := newWriter(t, addr, Options{BatchMessages: 10})

	msgs := testMsgs("seq", "ok", 35, 1)
	mustWrite(t, w, msgs)
	for i := 1; i < len(msgs); i++ {
		if msgs[i].DeliveredOffset != msgs[i-1].DeliveredOffset+1 {
			t.Fatalf("offsets out of order at %d: %d after %d", i, msgs[i].DeliveredOffset, msgs[i-1].DeliveredOffset)
		}
	}

	// Fail the second produce request of the next Write. When runs once
	// per check of a request (topic, then partition): count requests.
	seen := map[kmsg.Request]int{}
	h := c.Fault(kfake.Fault{
		Keys:  []kmsg.Key{kmsg.Produce},
		Topic: "seq",
		Err:   kerr.NotLeaderForPartition,
		Count: -1,
		When: func(r kmsg.Request) bool {
			if _, ok := seen[r]; !ok {
				seen[r] = len(seen) + 1
			}
			return seen[r] == 2
		},
	})
	defer h.Remove()
	msgs = testMsgs("seq", "mid", 35, 1)
	err := w.Write(context.Background(), msgs)
	var be *sink.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("want BatchError, got %v", err)
	}
	for i, e := range be.Errs {
		switch {
		case i < 10 && e != nil:
			t.Errorf("message %d: %v, want delivered", i, e)
		case i >= 10 && (e == nil || sink.IsPermanent(e)):
			t.Errorf("message %d: %v, want transient", i, e)
		case i >= 10 && sink.Reason(e) != ReasonLeader:
			t.Errorf("message %d: reason %s, want leader", i, sink.Reason(e))
		}
	}
	// Retry the failed tail as the forwarder would.
	mustWrite(t, w, msgs[10:])
	recs := consume(t, addr, "seq", 70)
	for i := 1; i < len(recs); i++ {
		if recs[i].Offset != recs[i-1].Offset+1 {
			t.Fatalf("gap in partition")
		}
	}
	var order []string
	for _, r := range recs[35:] {
		order = append(order, string(r.Headers[len(r.Headers)-1].Value))
	}
	for i, id := range order {
		if want := fmt.Sprintf("mid-%d", i); id != want {
			t.Fatalf("record %d after the first batch is %s, want %s (all: %v)", i, id, want, order)
		}
	}
}

func TestAcks(t *testing.T) {
	_, addr := newCluster(t, kfake.SeedTopics(1, "a"))
	for _, tc := range []struct {
		acks   string
		report bool
	}{{"all", true}, {"one", true}, {"none", false}} {
		w := newWriter(t, addr, Options{Acks: tc.acks})
		msgs := testMsgs("a", tc.acks, 3, 1)
		mustWrite(t, w, msgs)
		for _, m := range msgs {
			if m.Delivered != tc.report {
				t.Errorf("acks %s: Delivered = %v", tc.acks, m.Delivered)
			}
		}
	}
	consume(t, addr, "a", 9)
}

func TestErrorMetrics(t *testing.T) {
	c, addr := newCluster(t, kfake.SeedTopics(1, "m"))
	set := metrics.NewSet()
	w := newWriter(t, addr, Options{Name: "m1", Metrics: set})
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "m", Err: kerr.NotEnoughReplicas, Count: -1})
	for i := 0; i < 2; i++ {
		if err := w.Write(context.Background(), testMsgs("m", fmt.Sprint("f", i), 3, 1)); !isTransient(err) {
			t.Fatalf("got %v", err)
		}
	}
	h.Remove()
	mustWrite(t, w, testMsgs("m", "ok", 3, 1))
	for series, want := range map[string]string{
		`sluice_sink_errors_total{sink="m1",reason="replicas"}`:          "2",
		`sluice_sink_failed_messages_total{sink="m1",reason="replicas"}`: "6",
		`sluice_sink_delivered_messages_total{sink="m1"}`:                "3",
		`sluice_sink_batch_messages_count{sink="m1"}`:                    "3",
		`sluice_sink_produce_seconds_count{sink="m1"}`:                   "3",
		`sluice_sink_broker_up{sink="m1"}`:                               "1",
		`sluice_sink_auth_failing{sink="m1"}`:                            "0",
	} {
		if got := metricValue(set, series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
}
