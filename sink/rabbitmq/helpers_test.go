package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	amqp "github.com/rabbitmq/amqp091-go"

	rmqtest "github.com/sluiceio/sluice/internal/testserver/rabbitmq"
	"github.com/sluiceio/sluice/sink"
)

// newWriter returns a Writer on the shared node (o.URL defaults to it),
// closed when the test ends.
func newWriter(t testing.TB, o Options) *Writer {
	t.Helper()
	if o.URL == "" {
		o.URL = node(t).URL()
	}
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := w.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return w
}

func write(t testing.TB, w *Writer, msgs []sink.Message) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return w.Write(ctx, msgs)
}

func mustWrite(t testing.TB, w *Writer, msgs []sink.Message) {
	t.Helper()
	if err := write(t, w, msgs); err != nil {
		t.Fatalf("Write(%d messages): %v (reason %s, permanent %v)", len(msgs), err, sink.Reason(err), sink.IsPermanent(err))
	}
}

// writeUntil retries a Write as the forwarder would, up to limit times,
// until it returns nil; it returns the errors of the failed attempts.
func writeUntil(t testing.TB, w *Writer, msgs []sink.Message, limit int) []error {
	t.Helper()
	var errs []error
	for range limit {
		err := write(t, w, msgs)
		if err == nil {
			return errs
		}
		errs = append(errs, err)
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("Write still failing after %d attempts: %v", limit, errs)
	return nil
}

// msg builds a message for topic with id and value.
func msg(topic, id, value string) sink.Message {
	return sink.Message{ID: id, Topic: topic, Value: []byte(value), Time: time.Now(), Partition: sink.NoPartition}
}

// batchErrs returns the per-message errors of err: those of a BatchError,
// or err for every message.
func batchErrs(t testing.TB, err error, n int) []error {
	t.Helper()
	var be *sink.BatchError
	if errors.As(err, &be) {
		if len(be.Errs) != n {
			t.Fatalf("BatchError with %d results for %d messages", len(be.Errs), n)
		}
		return be.Errs
	}
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

// one is the error of the only message of a Write.
func one(t testing.TB, err error) error {
	t.Helper()
	return batchErrs(t, err, 1)[0]
}

// expectReason fails unless err is a non-nil error with reason and the
// given permanence.
func expectReason(t testing.TB, what string, err error, reason string, permanent bool) {
	t.Helper()
	if err == nil || sink.Reason(err) != reason || sink.IsPermanent(err) != permanent {
		t.Fatalf("%s: %v (reason %q, permanent %v), want reason %q permanent %v",
			what, err, sink.Reason(err), sink.IsPermanent(err), reason, permanent)
	}
}

// fromDelivery turns what a consumer received into a sink.Message, as the
// sink wrote it: the id from sluice-id, the key from sluice-key, headers
// by name (arrays expanded, in order), the topic = the queue.
func fromDelivery(queue string, d amqp.Delivery) sink.Message {
	m := sink.Message{Topic: queue, Value: d.Body, Time: d.Timestamp, Partition: sink.NoPartition}
	names := make([]string, 0, len(d.Headers))
	for k := range d.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		switch v := d.Headers[k].(type) {
		case string:
			switch k {
			case sink.IDHeader:
				m.ID = v
			case KeyHeader:
				m.Key = []byte(v)
			default:
				m.Headers = append(m.Headers, sink.Header{Key: k, Value: []byte(v)})
			}
		case []any:
			for _, e := range v {
				s, _ := e.(string)
				m.Headers = append(m.Headers, sink.Header{Key: k, Value: []byte(s)})
			}
		default:
			m.Headers = append(m.Headers, sink.Header{Key: k, Value: fmt.Appendf(nil, "%v", v)})
		}
	}
	return m
}

// readIDs returns the sluice ids in queue, in order.
func readIDs(t testing.TB, srv *rmqtest.Server, queue string) []string {
	t.Helper()
	var ids []string
	for _, d := range srv.ReadQueue(t, queue) {
		id, _ := d.Headers[sink.IDHeader].(string)
		ids = append(ids, id)
	}
	return ids
}

// scrape returns the value of one series of set ("name{labels}"), or -1.
func scrape(set *metrics.Set, series string) float64 {
	var b strings.Builder
	set.WritePrometheus(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return -1
}
