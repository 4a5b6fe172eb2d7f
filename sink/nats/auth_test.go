package nats

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/sluiceio/sluice/internal/syncbuf"
	"github.com/sluiceio/sluice/internal/testserver/natsserver"
	"github.com/sluiceio/sluice/sink"
)

// writeUntil retries a Write until it succeeds, at most limit.
func writeUntil(t *testing.T, w *Writer, msgs []sink.Message, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := w.Write(context.Background(), msgs)
		if err == nil {
			return
		}
		if sink.IsPermanent(err) || time.Now().After(deadline) {
			t.Fatalf("Write: %v (reason %s)", err, sink.Reason(err))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func gauge(set *metrics.Set, series string) string {
	var b bytes.Buffer
	set.WritePrometheus(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if name, v, ok := strings.Cut(line, " "); ok && name == series {
			return v
		}
	}
	return ""
}

// TestBadCredentials: a wrong password is retried (transient, reason
// auth), raises sluice_sink_auth_failing, is never logged, and heals once
// the server accepts the credentials (its configuration reloaded).
func TestBadCredentials(t *testing.T) {
	const secret = "s3cr3t-pw"
	srv := natsserver.Start(t, natsserver.Options{Users: []natsserver.User{{Name: "sluice", Password: "other"}}})
	stream, prefix := newStream(t, srv, nil)
	set := metrics.NewSet()
	logs := &syncbuf.Buffer{}
	w := newWriter(t, Options{
		Name: "t", URL: srv.URLWithUser("sluice", secret), Subject: prefix + ".{topic}", ReconnectWait: 50 * time.Millisecond,
		Metrics: set, Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	batch := []sink.Message{msg("a-1", "t", "v")}
	for i := 0; i < 3; i++ {
		err := w.Write(context.Background(), batch)
		var be *sink.BatchError
		if err == nil || sink.IsPermanent(err) || errors.As(err, &be) || sink.Reason(err) != ReasonAuth {
			t.Fatalf("Write with a wrong password: %v (reason %s)", err, sink.Reason(err))
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("error shows the password: %v", err)
		}
	}
	if v := gauge(set, `sluice_sink_auth_failing{sink="t"}`); v != "1" {
		t.Fatalf("sluice_sink_auth_failing = %q, want 1", v)
	}

	srv.Reconfigure(func(o *natsserver.Options) { o.Users[0].Password = secret })
	writeUntil(t, w, batch, 30*time.Second)
	if v := gauge(set, `sluice_sink_auth_failing{sink="t"}`); v != "0" {
		t.Fatalf("sluice_sink_auth_failing = %q after healing, want 0", v)
	}
	if got := srv.Read(stream); len(got) != 1 {
		t.Fatalf("stream holds %d messages", len(got))
	}
	if strings.Contains(logs.String(), secret) {
		t.Fatalf("the log shows the password:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "xxxxx@127.0.0.1") {
		t.Fatalf("the log does not name the server (redacted):\n%s", logs)
	}
}

// TestTokenAndNkey: a token in the URL, and an nkey seed file.
func TestTokenAndNkey(t *testing.T) {
	srv := natsserver.Start(t, natsserver.Options{Token: "tok-123"})
	stream, prefix := newStream(t, srv, nil)
	w := newWriter(t, Options{URL: srv.URLWithToken("tok-123"), Subject: prefix + ".{topic}"})
	mustWrite(t, w, []sink.Message{msg("tok", "t", "v")})
	bad := newWriter(t, Options{URL: srv.URLWithToken("wrong"), Subject: prefix + ".{topic}"})
	if err := bad.Write(context.Background(), []sink.Message{msg("tok-bad", "t", "v")}); sink.Reason(err) != ReasonAuth || sink.IsPermanent(err) {
		t.Fatalf("wrong token: %v (reason %s)", err, sink.Reason(err))
	}
	if got := srv.Read(stream); len(got) != 1 {
		t.Fatalf("stream holds %d messages", len(got))
	}

	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	nsrv := natsserver.Start(t, natsserver.Options{Users: []natsserver.User{{Nkey: pub}}})
	stream, prefix = newStream(t, nsrv, nil)
	w = newWriter(t, Options{URL: nsrv.URL(), NkeyFile: seedFile, Subject: prefix + ".{topic}"})
	mustWrite(t, w, []sink.Message{msg("nk", "t", "v")})
	if got := nsrv.Read(stream); len(got) != 1 {
		t.Fatalf("stream holds %d messages", len(got))
	}
	if _, err := New(Options{URL: nsrv.URL(), NkeyFile: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Fatal("New accepted a missing nkey file")
	}
	if _, err := New(Options{URL: nsrv.URL(), CredsFile: seedFile}); err == nil {
		t.Fatal("New accepted a credentials file without a JWT")
	}
}

// TestPermissionDenied: publishing to a subject the user may not publish
// to gets no PubAck; the sink reports it as auth (transient), not as a
// timeout, and raises sluice_sink_auth_failing.
func TestPermissionDenied(t *testing.T) {
	srv := natsserver.Start(t, natsserver.Options{Users: []natsserver.User{
		{Name: "sluice", Password: "pw", Publish: []string{"allowed.>", "$JS.API.>"}},
	}})
	newStream(t, srv, func(c *jetstream.StreamConfig) { c.Subjects = []string{"allowed.>", "denied.>"} })
	set := metrics.NewSet()
	w := newWriter(t, Options{Name: "p", URL: srv.URLWithUser("sluice", "pw"), AckTimeout: 500 * time.Millisecond, Metrics: set})
	mustWrite(t, w, []sink.Message{msg("ok", "allowed.x", "v")})
	err := w.Write(context.Background(), []sink.Message{msg("no", "denied.x", "v")})
	if err == nil || sink.IsPermanent(err) || sink.Reason(err) != ReasonAuth {
		t.Fatalf("publish without permission: %v (reason %s)", err, sink.Reason(err))
	}
	if v := gauge(set, `sluice_sink_auth_failing{sink="p"}`); v != "1" {
		t.Fatalf("sluice_sink_auth_failing = %q, want 1", v)
	}
}

// TestTLS: a server with a certificate from the test's CA; the sink
// verifies it with TLS_CA_FILE, and refuses it without.
func TestTLS(t *testing.T) {
	files := natsserver.GenerateTLS(t)
	srv := natsserver.Start(t, natsserver.Options{TLSCert: files.Cert, TLSKey: files.Key})
	stream, prefix := newStream(t, srv, nil)
	cfg, err := TLSConfig(files.CA, "", "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, Options{URL: "tls://" + srv.Addr(), TLS: cfg, Subject: prefix + ".{topic}"})
	mustWrite(t, w, []sink.Message{msg("tls", "t", "v")})
	if got := srv.Read(stream); len(got) != 1 {
		t.Fatalf("stream holds %d messages", len(got))
	}
	untrusted := newWriter(t, Options{URL: "tls://" + srv.Addr(), Subject: prefix + ".{topic}"})
	err = untrusted.Write(context.Background(), []sink.Message{msg("tls-2", "t", "v")})
	if err == nil || sink.IsPermanent(err) || sink.Reason(err) != ReasonTLS {
		t.Fatalf("server certificate from an unknown CA: %v (reason %s)", err, sink.Reason(err))
	}
}
