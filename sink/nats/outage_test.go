package nats

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluiceio/sluice/internal/testserver/natsserver"
	"github.com/sluiceio/sluice/sink"
)

// sendLikeForwarder writes batch until every message is delivered, the
// way the forwarder does: a BatchError's delivered messages are done, the
// others are sent again; any other error sends the whole rest again.
func sendLikeForwarder(w *Writer, batch []sink.Message, stop <-chan struct{}) error {
	for {
		err := w.Write(context.Background(), batch)
		if err == nil {
			return nil
		}
		var be *sink.BatchError
		switch {
		case sink.IsPermanent(err):
			return err
		case errors.As(err, &be):
			var rest []sink.Message
			for i, e := range be.Errs {
				if sink.IsPermanent(e) {
					return e
				}
				if e != nil {
					rest = append(rest, batch[i])
				}
			}
			batch = rest
		}
		select {
		case <-stop:
			return fmt.Errorf("gave up: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestKillAndRestart: the server is killed (SIGKILL) while batches are in
// flight and restarted on the same store. Every message whose Write
// returned nil is in the stream, nothing is out of order, and the resent
// messages whose first copy was stored are dropped by the server
// (Nats-Msg-Id) instead of stored twice.
func TestKillAndRestart(t *testing.T) {
	srv := natsserver.Start(t, natsserver.Options{})
	stream, prefix := newStream(t, srv, nil)
	set := metrics.NewSet()
	w := newWriter(t, Options{Name: "o", URL: srv.URL(), Subject: prefix + ".{topic}", ReconnectWait: 50 * time.Millisecond, AckTimeout: 2 * time.Second, Metrics: set})

	const batches, size = 200, 100
	var sent atomic.Int64
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for b := range batches {
			batch := make([]sink.Message, size)
			for i := range batch {
				n := b*size + i
				batch[i] = msg(fmt.Sprintf("k-%06d", n), "t", fmt.Sprint(n))
				batch[i].Key = []byte("k")
			}
			if err := sendLikeForwarder(w, batch, stop); err != nil {
				done <- err
				return
			}
			sent.Add(size)
		}
		done <- nil
	}()
	for sent.Load() < batches*size/4 {
		time.Sleep(time.Millisecond)
	}
	srv.Kill()
	killedAt := sent.Load()
	time.Sleep(300 * time.Millisecond)
	srv.Restart()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		close(stop)
		t.Fatalf("not all delivered 60s after the restart (%d of %d)", sent.Load(), batches*size)
	}

	got := readBack(t, srv, stream, prefix)
	seen := make(map[string]int, len(got))
	next, dups := 0, 0
	for _, m := range got {
		seen[m.ID]++
		if seen[m.ID] > 1 {
			dups++
			continue
		}
		if want := fmt.Sprintf("k-%06d", next); m.ID != want {
			t.Fatalf("stream order: %s where %s was expected", m.ID, want)
		}
		next++
	}
	if next != batches*size {
		t.Fatalf("stream holds %d distinct messages, want %d", next, batches*size)
	}
	if dups != 0 {
		t.Errorf("%d messages stored twice: Nats-Msg-Id should have de-duplicated the resends", dups)
	}
	t.Logf("killed after %d acknowledged messages; all %d in the stream, in order, %d stored twice; %s resends dropped by the server as duplicates",
		killedAt, next, dups, gauge(set, `sluice_sink_duplicates_total{sink="o"}`))
}
