package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluiceio/sluice/internal/loadgen"
	"github.com/sluiceio/sluice/internal/testserver/natsserver"
	natssink "github.com/sluiceio/sluice/sink/nats"
)

// These tests run the real binary against a real nats-server process with
// JetStream (internal/testserver/natsserver): the sink is named "js".

// natsEnv is the environment of an agent with one nats sink to url.
func natsEnv(t *testing.T, url string, extra ...string) []string {
	return append([]string{
		"SLUICE_SPOOL_DIR=" + t.TempDir(), "SLUICE_SINKS=js", "SLUICE_JS_TYPE=nats", "SLUICE_JS_URL=" + url,
		"SLUICE_JS_RETRY_MAX=500ms", "SLUICE_JS_RECONNECT_WAIT=100ms",
	}, extra...)
}

// readNATS reads a stream back as deliveries, in stream order.
func readNATS(t *testing.T, srv *natsserver.Server, stream string) []loadgen.Delivered {
	t.Helper()
	var out []loadgen.Delivered
	for _, m := range srv.Read(stream) {
		d, err := natssink.DecodeHeaders(m.Header)
		if err != nil {
			t.Fatalf("%s seq %d: %v", stream, m.Sequence, err)
		}
		del := loadgen.Delivered{ID: d.ID, Topic: m.Subject, Key: string(d.Key), N: -1, Partition: -1, Offset: int64(m.Sequence)}
		if vf, ok := loadgen.ParseValue(m.Data); ok {
			del.Run, del.N = vf.Run, vf.N
		}
		out = append(out, del)
	}
	return out
}

// TestE2ENATSOutage: under load the server is killed (SIGKILL) and
// restarted on the same store, then hung (SIGSTOP, longer than the ack
// timeout) and resumed. Every push is answered 202 throughout; every
// acknowledged message ends up in the stream, in order per key; resends
// whose first copy was stored are dropped by the server (Nats-Msg-Id).
func TestE2ENATSOutage(t *testing.T) {
	srv := natsserver.Start(t, natsserver.Options{})
	srv.CreateStream(jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events"}, Storage: jetstream.FileStorage})
	p := start(t, natsEnv(t, srv.URL(), "SLUICE_JS_ACK_TIMEOUT=1s")...)

	wait := loadDuring(t, loadgen.Config{URL: p.url, Mode: loadgen.ModeNDJSON, Batch: 20, Size: 200,
		Connections: 4, Keys: 40, Topic: "events", Duration: 7 * time.Second, Verify: true})
	time.Sleep(time.Second)
	srv.Kill()
	killed := time.Now()
	time.Sleep(1500 * time.Millisecond)
	srv.Restart()
	down := time.Since(killed)
	time.Sleep(time.Second)
	srv.Pause()
	time.Sleep(2500 * time.Millisecond)
	srv.Resume()
	rep := wait()
	waitBacklogEmpty(t, p)
	got := readNATS(t, srv, "EVENTS")
	v := loadgen.Verify(rep.AckedIDs, loadgen.FilterRun(got, rep.RunID))
	dropped := scrapeMetric(t, p, `sluice_sink_duplicates_total{sink="js"}`)
	if v.Lost != 0 || v.OutOfOrder != 0 {
		t.Fatalf("after the outages: %+v", v)
	}
	t.Logf("nats outage: killed for %v and hung for 2.5s under load: %d pushed, %d acknowledged, %d delivered (%d unique), %d lost, %d stored twice, %d out of order; %v resends dropped by the server as duplicates",
		down.Round(time.Millisecond), rep.Messages, v.Acked, v.Delivered, v.Unique, v.Lost, v.Duplicates, v.OutOfOrder, dropped)
}

// TestE2ENATSBadCredentials: with a wrong password the sink is failing
// (sluice_sink_failing 1, retries with reason auth, auth_failing 1), and
// nothing is dead-lettered; once the server accepts the password (its
// configuration rewritten and reloaded with SIGHUP), the backlog drains.
func TestE2ENATSBadCredentials(t *testing.T) {
	srv := natsserver.Start(t, natsserver.Options{Users: []natsserver.User{{Name: "sluice", Password: "rotated"}}})
	srv.CreateStream(jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events"}})
	const password = "s3cr3t-old"
	p := start(t, natsEnv(t, srv.URLWithUser("sluice", password))...)
	var ids []string
	for i := range 50 {
		code, got, err := push(p.url, "events", fmt.Appendf(nil, "m%d", i), "")
		if err != nil || code != 202 {
			t.Fatalf("push %d: %d %v", i, code, err)
		}
		ids = append(ids, got...)
	}
	waitMetric(t, p, `sluice_sink_failing{sink="js"}`, 1)
	waitMetric(t, p, `sluice_sink_auth_failing{sink="js"}`, 1)
	if r := scrapeMetric(t, p, `sluice_sink_retries_total{sink="js",reason="auth"}`); r <= 0 {
		t.Fatalf("no retries with reason auth (%v)\n%s", r, p.logs())
	}
	time.Sleep(500 * time.Millisecond) // a few more retries
	if n := dlTotal(t, p); n != 0 {
		t.Fatalf("%d messages dead-lettered for bad credentials", n)
	}

	srv.Reconfigure(func(o *natsserver.Options) { o.Users[0].Password = password })
	waitBacklogEmpty(t, p)
	waitMetric(t, p, `sluice_sink_failing{sink="js"}`, 0)
	waitMetric(t, p, `sluice_sink_auth_failing{sink="js"}`, 0)
	got := readNATS(t, srv, "EVENTS")
	if len(got) != len(ids) || dlTotal(t, p) != 0 {
		t.Fatalf("after the fix: %d of %d in the stream, %d dead letters", len(got), len(ids), dlTotal(t, p))
	}
	if strings.Contains(p.logs(), password) {
		t.Fatalf("the agent logged the password:\n%s", p.logs())
	}
}

// TestE2ENATSMessageTooLarge: one message over the stream's max_msg_size
// is dead-lettered with its reason; its batch-mates (same request, same
// batch) are delivered.
func TestE2ENATSMessageTooLarge(t *testing.T) {
	srv := natsserver.Start(t, natsserver.Options{})
	srv.CreateStream(jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events"}, MaxMsgSize: 2048})
	p := start(t, natsEnv(t, srv.URL(), "SLUICE_JS_LINGER=200ms")...)
	var body strings.Builder
	for i := range 10 {
		if i == 6 {
			body.WriteString(strings.Repeat("x", 4096) + "\n")
			continue
		}
		fmt.Fprintf(&body, "small-%d\n", i)
	}
	code, ids, err := push(p.url, "events", []byte(body.String()), "application/x-ndjson")
	if err != nil || code != 202 || len(ids) != 10 {
		t.Fatalf("push: %d %v %v", code, ids, err)
	}
	waitBacklogEmpty(t, p)
	dls := deadLetters(t, p)
	if len(dls) != 1 || dls[0].ID != ids[6] || dls[0].Reason != natssink.ReasonTooLarge || !strings.Contains(dls[0].Error, "message size exceeds maximum") {
		t.Fatalf("dead letters %+v, want only %s with reason too_large", dls, ids[6])
	}
	got := readNATS(t, srv, "EVENTS")
	if len(got) != 9 {
		t.Fatalf("%d messages in the stream, want the 9 batch-mates", len(got))
	}
	for _, d := range got {
		if d.ID == ids[6] {
			t.Fatal("the large message is in the stream")
		}
	}
	var st struct{ Status, Error string }
	getJSON(t, p.url+"/v1/messages/"+ids[6], &st)
	if st.Status != "failed" {
		t.Fatalf("status of the large message: %+v", st)
	}
}

// TestE2ENATSNoStream: messages to a subject no stream captures are held
// (retried, reason no_stream) during the grace, while other topics are
// delivered; after the grace they are dead-lettered with reason no_stream.
func TestE2ENATSNoStream(t *testing.T) {
	srv := natsserver.Start(t, natsserver.Options{})
	srv.CreateStream(jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events"}})
	p := start(t, natsEnv(t, srv.URL(), "SLUICE_JS_NO_STREAM_GRACE=3s")...)
	const grace = 3 * time.Second
	pushedAt := time.Now()
	_, orphan, err := push(p.url, "orphan", []byte("lost?"), "")
	if err != nil {
		t.Fatal(err)
	}
	if code, _, err := push(p.url, "events", []byte("fine"), ""); err != nil || code != 202 {
		t.Fatalf("push: %d %v", code, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(readNATS(t, srv, "EVENTS")) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("events not delivered while orphan is held\n%s", p.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitMetric(t, p, `sluice_sink_failing{sink="js"}`, 1)
	if scrapeMetric(t, p, `sluice_sink_retries_total{sink="js",reason="no_stream"}`) <= 0 {
		t.Fatalf("no retries with reason no_stream\n%s", p.logs())
	}
	// Within the grace nothing is dead-lettered; on a slow machine the
	// steps above may outlast it, and then only the bound below holds.
	if n := dlTotal(t, p); n != 0 && time.Since(pushedAt) < grace {
		t.Fatalf("dead-lettered within the grace (%d)", n)
	}
	for {
		if dls := deadLetters(t, p); len(dls) == 1 {
			if dls[0].ID != orphan[0] || dls[0].Reason != natssink.ReasonNoStream {
				t.Fatalf("dead letter %+v", dls[0])
			}
			if took := time.Since(pushedAt); took < grace {
				t.Fatalf("dead-lettered %v after the push, within the %v grace", took, grace)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not dead-lettered after the grace\n%s", p.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitBacklogEmpty(t, p)
}
