package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluiceio/sluice/sink"
)

// newCluster starts a one-broker kfake cluster closed at the end of the
// test.
func newCluster(t testing.TB, opts ...kfake.Opt) (*kfake.Cluster, string) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()[0]
}

// newWriter returns a Writer for the brokers at addr, closed at the end of
// the test. o.Brokers is set when empty.
func newWriter(t testing.TB, addr string, o Options) *Writer {
	t.Helper()
	if len(o.Brokers) == 0 {
		o.Brokers = []string{addr}
	}
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return w
}

// testMsgs returns n messages for topic with ids "<prefix>-<i>", keys
// "key-<i % keys>" (nil keys when keys == 0) and a header.
func testMsgs(topic, prefix string, n, keys int) []sink.Message {
	base := time.UnixMilli(1_700_000_000_000)
	msgs := make([]sink.Message, n)
	for i := range msgs {
		m := sink.Message{
			ID:        fmt.Sprintf("%s-%d", prefix, i),
			Topic:     topic,
			Value:     []byte(fmt.Sprintf("value %s %d", prefix, i)),
			Headers:   []sink.Header{{Key: "h", Value: []byte(fmt.Sprint(i))}},
			Time:      base.Add(time.Duration(i) * time.Millisecond),
			Partition: sink.NoPartition,
		}
		if keys > 0 {
			m.Key = []byte(fmt.Sprintf("key-%d", i%keys))
		}
		msgs[i] = m
	}
	return msgs
}

// consume reads records from the start of topic until it has at least n,
// with the given client options (SASL, TLS).
func consume(t testing.TB, addr, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100 * time.Millisecond),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consume %s: got %d records, want %d", topic, len(recs), n)
		}
		for _, e := range fs.Errors() {
			if !errors.Is(e.Err, context.DeadlineExceeded) {
				t.Logf("consume %s: %v", topic, e.Err)
			}
		}
		recs = append(recs, fs.Records()...)
	}
	return recs
}

// byID indexes records by their sluice-id header; it fails the test when
// a record has none or several.
func byID(t testing.TB, recs []*kgo.Record) map[string]*kgo.Record {
	t.Helper()
	out := make(map[string]*kgo.Record)
	for _, r := range recs {
		var ids []string
		for _, h := range r.Headers {
			if h.Key == sink.IDHeader {
				ids = append(ids, string(h.Value))
			}
		}
		if len(ids) != 1 {
			t.Fatalf("record %s[%d]@%d has %d %s headers", r.Topic, r.Partition, r.Offset, len(ids), sink.IDHeader)
		}
		if _, dup := out[ids[0]]; !dup {
			out[ids[0]] = r
		}
	}
	return out
}

// mustWrite writes msgs and fails the test on any error.
func mustWrite(t testing.TB, w *Writer, msgs []sink.Message) {
	t.Helper()
	if err := w.Write(context.Background(), msgs); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// isTransient reports whether err is a whole-batch transient error: not
// Permanent and not a BatchError.
func isTransient(err error) bool {
	var be *sink.BatchError
	return err != nil && !sink.IsPermanent(err) && !errors.As(err, &be)
}

// retryable reports whether the forwarder would simply retry: a transient
// whole-batch error, or a BatchError none of whose entries is Permanent
// (some messages of the batch may already be delivered).
func retryable(err error) bool {
	var be *sink.BatchError
	if errors.As(err, &be) {
		for _, e := range be.Errs {
			if sink.IsPermanent(e) {
				return false
			}
		}
		return true
	}
	return isTransient(err)
}

// fakeClock is an adjustable clock for Options.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// metricValue returns the value of the series line starting with series in
// set's Prometheus output, or "" when absent.
func metricValue(set *metrics.Set, series string) string {
	var b bytes.Buffer
	set.WritePrometheus(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// debugLogger logs everything, as text, to w.
func debugLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
