package nats

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluiceio/sluice/internal/testenv"
	"github.com/sluiceio/sluice/internal/testserver/natsserver"
	"github.com/sluiceio/sluice/sink"
)

// servers returns the nats-server binaries the tests run against, by
// version: the one scripts/deps/nats.sh builds, and Debian's when it is
// installed (required too when dependencies are).
func servers(t *testing.T) map[string]string {
	t.Helper()
	bins := map[string]string{}
	main := natsserver.Binary(t)
	bins[natsserver.BinaryVersion(main)] = main
	if deb := natsserver.DebianBinary(); deb != "" {
		bins[natsserver.BinaryVersion(deb)] = deb
	} else if testenv.Required() {
		testenv.Missing(t, "Debian's nats-server", "apt-get install -y nats-server")
	}
	return bins
}

// streamSeq numbers streams so that every test gets its own subjects.
var streamSeq atomic.Int64

// newStream creates a stream with a fresh subject prefix and returns its
// name and the prefix (subjects are <prefix>.<topic>).
func newStream(t *testing.T, srv *natsserver.Server, mod func(*jetstream.StreamConfig)) (name, prefix string) {
	t.Helper()
	n := streamSeq.Add(1)
	name, prefix = fmt.Sprintf("S%d", n), fmt.Sprintf("p%d", n)
	cfg := jetstream.StreamConfig{Name: name, Subjects: []string{prefix + ".>"}, Storage: jetstream.FileStorage}
	if mod != nil {
		mod(&cfg)
	}
	srv.CreateStream(cfg)
	return name, prefix
}

// newWriter builds a Writer closed when the test ends.
func newWriter(t testing.TB, o Options) *Writer {
	t.Helper()
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return w
}

// readBack returns the messages of stream name as the sink's input looked,
// the topic taken from the subject after prefix.
func readBack(t *testing.T, srv *natsserver.Server, name, prefix string) []sink.Message {
	t.Helper()
	var out []sink.Message
	for _, m := range srv.Read(name) {
		d, err := DecodeHeaders(m.Header)
		if err != nil {
			t.Fatalf("stream %s seq %d: %v", name, m.Sequence, err)
		}
		out = append(out, sink.Message{
			ID: d.ID, Topic: strings.TrimPrefix(m.Subject, prefix+"."), Key: d.Key, Value: m.Data,
			Headers: d.Headers, Partition: sink.NoPartition,
		})
	}
	return out
}

func mustWrite(t testing.TB, w *Writer, msgs []sink.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Write(ctx, msgs); err != nil {
		t.Fatalf("Write(%d): %v (reason %s)", len(msgs), err, sink.Reason(err))
	}
}

// msg is a message to topic with id and value.
func msg(id, topic, value string) sink.Message {
	return sink.Message{ID: id, Topic: topic, Value: []byte(value), Partition: sink.NoPartition, Time: time.Now()}
}
