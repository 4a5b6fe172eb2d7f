package kafkaproto

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

const testToken = "s3cret"

// handshake sends a SaslHandshake v1 for mechanism.
func (r *rawConn) handshake(mechanism string) *kmsg.SASLHandshakeResponse {
	r.t.Helper()
	req := &kmsg.SASLHandshakeRequest{Version: 1, Mechanism: mechanism}
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	r.request(req, resp)
	return resp
}

// authenticate sends a SaslAuthenticate v2 (flexible) with a PLAIN message.
func (r *rawConn) authenticate(msg string) *kmsg.SASLAuthenticateResponse {
	r.t.Helper()
	req := &kmsg.SASLAuthenticateRequest{Version: 2, SASLAuthBytes: []byte(msg)}
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	r.request(req, resp)
	return resp
}

// advertises reports whether an ApiVersions answer lists key.
func (r *rawConn) advertises(key int16) bool {
	r.t.Helper()
	req := &kmsg.ApiVersionsRequest{Version: 3, ClientSoftwareName: "t", ClientSoftwareVersion: "1"}
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	r.request(req, resp)
	for _, k := range resp.ApiKeys {
		if k.ApiKey == key {
			return true
		}
	}
	return false
}

// TestSASLPlainWithTheToken: with a token set, ApiVersions advertises the
// SASL APIs, a PLAIN exchange with the token authenticates (any user
// name), and the connection then produces; the record reaches the sink.
// Without a token the SASL APIs are not advertised and a handshake closes
// the connection, as any API not served does.
func TestSASLPlainWithTheToken(t *testing.T) {
	e := start(t, t.TempDir(), Options{Token: testToken})
	r := dial(t, e.srv.Addr())
	if !r.advertises(keySaslHandshake) || !r.advertises(keySaslAuthenticate) {
		t.Fatal("SASL APIs not advertised with a token set")
	}
	if hs := r.handshake("PLAIN"); hs.ErrorCode != 0 {
		t.Fatalf("handshake: %v", kerr.ErrorForCode(hs.ErrorCode))
	}
	if a := r.authenticate("\x00any-user\x00" + testToken); a.ErrorCode != 0 {
		t.Fatalf("authenticate: %v %v", kerr.ErrorForCode(a.ErrorCode), a.ErrorMessage)
	}
	if p := r.produce("t", 0, recordBatch(-1, -1, 0, 0, "after auth")); p.ErrorCode != 0 {
		t.Fatalf("produce after authentication: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	if got := e.sink.wait(t, 1); string(got[0].Value) != "after auth" {
		t.Fatalf("sink got %q", got[0].Value)
	}
	if n := e.srv.m.authFailures.Get(); n != 0 {
		t.Errorf("auth failures %d, want 0", n)
	}

	open := start(t, t.TempDir(), Options{})
	r = dial(t, open.srv.Addr())
	if r.advertises(keySaslHandshake) || r.advertises(keySaslAuthenticate) {
		t.Error("SASL APIs advertised without a token")
	}
	r.send(frame(&kmsg.SASLHandshakeRequest{Version: 1, Mechanism: "PLAIN"}, 9))
	if !r.closed() {
		t.Error("a SaslHandshake without a token set did not close the connection")
	}
}

// TestSASLRefusesEverythingElseFirst: before authenticating, a Metadata,
// a Produce (acks 0 or -1) or an InitProducerId closes the connection
// and nothing is spooled; so does a frame over 16 KiB, before it is read.
func TestSASLRefusesEverythingElseFirst(t *testing.T) {
	e := start(t, t.TempDir(), Options{Token: testToken, ReadTimeout: time.Hour})
	for name, req := range map[string]kmsg.Request{
		"metadata":       &kmsg.MetadataRequest{Version: 4},
		"produce":        produceReq("t", 0, -1, recordBatch(-1, -1, 0, 0, "unauthenticated")),
		"produce acks 0": produceReq("t", 0, 0, recordBatch(-1, -1, 0, 0, "unauthenticated")),
		"initproducerid": &kmsg.InitProducerIDRequest{Version: 4},
	} {
		r := dial(t, e.srv.Addr())
		r.send(frame(req, 1))
		if !r.closed() {
			t.Errorf("%s before authentication: connection not closed", name)
		}
	}
	// After a handshake but before SaslAuthenticate: still refused.
	r := dial(t, e.srv.Addr())
	r.handshake("PLAIN")
	r.send(frame(produceReq("t", 0, -1, recordBatch(-1, -1, 0, 0, "unauthenticated")), 5))
	if !r.closed() {
		t.Error("produce between handshake and authenticate: connection not closed")
	}
	// A large frame: only its size is sent; the server closes without
	// waiting for the rest (its read timeout is far longer than the test).
	r = dial(t, e.srv.Addr())
	r.send(binary.BigEndian.AppendUint32(nil, 1<<20))
	if !r.closed() {
		t.Error("a 1 MiB frame before authentication: connection not closed")
	}
	if n := e.srv.m.records.Get(); n != 0 {
		t.Errorf("%d records spooled from unauthenticated connections", n)
	}
}

// TestSASLRefusalsAnswerThenClose: a wrong password, another mechanism, an
// authenticate without a handshake and a second handshake each get their
// Kafka error code in an answer, then the connection is closed; each is
// counted in sluice_kafka_listener_auth_failures_total.
func TestSASLRefusalsAnswerThenClose(t *testing.T) {
	e := start(t, t.TempDir(), Options{Token: testToken})
	cases := []struct {
		name string
		run  func(r *rawConn) int16
		want *kerr.Error
	}{
		{"wrong password", func(r *rawConn) int16 {
			r.handshake("PLAIN")
			return r.authenticate("\x00u\x00wrong").ErrorCode
		}, kerr.SaslAuthenticationFailed},
		{"token as user name", func(r *rawConn) int16 {
			r.handshake("PLAIN")
			return r.authenticate("\x00" + testToken + "\x00x").ErrorCode
		}, kerr.SaslAuthenticationFailed},
		{"token with a suffix", func(r *rawConn) int16 {
			r.handshake("PLAIN")
			return r.authenticate("\x00u\x00" + testToken + "x").ErrorCode
		}, kerr.SaslAuthenticationFailed},
		{"scram", func(r *rawConn) int16 { return r.handshake("SCRAM-SHA-256").ErrorCode }, kerr.UnsupportedSaslMechanism},
		{"no handshake", func(r *rawConn) int16 { return r.authenticate("\x00u\x00" + testToken).ErrorCode }, kerr.IllegalSaslState},
		{"handshake after auth", func(r *rawConn) int16 {
			r.handshake("PLAIN")
			if a := r.authenticate("\x00u\x00" + testToken); a.ErrorCode != 0 {
				r.t.Fatalf("authenticate: %v", kerr.ErrorForCode(a.ErrorCode))
			}
			return r.handshake("PLAIN").ErrorCode
		}, kerr.IllegalSaslState},
	}
	for i, c := range cases {
		r := dial(t, e.srv.Addr())
		if got := kerr.ErrorForCode(c.run(r)); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
		if !r.closed() {
			t.Errorf("%s: connection not closed after the refusal", c.name)
		}
		if n := e.srv.m.authFailures.Get(); n != uint64(i+1) {
			t.Errorf("%s: auth failures %d, want %d", c.name, n, i+1)
		}
	}
}

// TestSASLHandshakeV0BarePlain: after a SaslHandshake v0 the PLAIN message
// comes as a bare size-prefixed frame (clients before Kafka 1.0): the
// token gets an empty frame back and the connection produces; a wrong
// password closes the connection and is counted.
func TestSASLHandshakeV0BarePlain(t *testing.T) {
	e := start(t, t.TempDir(), Options{Token: testToken})
	bare := func(r *rawConn, msg string) {
		r.send(append(binary.BigEndian.AppendUint32(nil, uint32(len(msg))), msg...))
	}
	r := dial(t, e.srv.Addr())
	hs := &kmsg.SASLHandshakeRequest{Version: 0, Mechanism: "PLAIN"}
	hsResp := hs.ResponseKind().(*kmsg.SASLHandshakeResponse)
	r.request(hs, hsResp)
	if hsResp.ErrorCode != 0 {
		t.Fatalf("handshake v0: %v", kerr.ErrorForCode(hsResp.ErrorCode))
	}
	bare(r, "\x00u\x00"+testToken)
	if b, err := r.readFrame(); err != nil || len(b) != 0 {
		t.Fatalf("answer to the bare PLAIN message: %q %v, want an empty frame", b, err)
	}
	if p := r.produce("t", 0, recordBatch(-1, -1, 0, 0, "v0")); p.ErrorCode != 0 {
		t.Fatalf("produce after a v0 authentication: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	e.sink.wait(t, 1)

	r = dial(t, e.srv.Addr())
	r.request(hs, hs.ResponseKind())
	bare(r, "\x00u\x00wrong")
	if !r.closed() {
		t.Error("a wrong bare PLAIN password did not close the connection")
	}
	if n := e.srv.m.authFailures.Get(); n != 1 {
		t.Errorf("auth failures %d, want 1", n)
	}
}

// TestPlainPasswordIs: RFC 4616's message with Kafka's rules.
func TestPlainPasswordIs(t *testing.T) {
	for msg, want := range map[string]bool{
		"\x00u\x00tok":     true,
		"u\x00u\x00tok":    true,  // authzid = authcid
		"x\x00u\x00tok":    false, // authzid of another user
		"\x00\x00tok":      false, // no user
		"\x00u\x00":        false, // no password
		"\x00u\x00tok\x00": false, // a fourth part
		"\x00u\x00to":      false,
		"\x00u\x00tokk":    false,
		"u\x00tok":         false,
		"":                 false,
	} {
		if got := plainPasswordIs([]byte(msg), "tok"); got != want {
			t.Errorf("%q: %v, want %v", msg, got, want)
		}
	}
}

// TestSASLFranzGo: franz-go's PLAIN mechanism with the token produces; with
// a wrong password it fails with SASL_AUTHENTICATION_FAILED (not retried);
// with SCRAM it is refused; without SASL its produce never succeeds.
func TestSASLFranzGo(t *testing.T) {
	e := start(t, t.TempDir(), Options{Token: testToken})
	produce := func(opts ...kgo.Opt) error {
		// The refused ones retry until the delivery timeout.
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.srv.Addr()), kgo.DefaultProduceTopic("t"),
			kgo.RecordRetries(2), kgo.RequestRetries(2), kgo.RecordDeliveryTimeout(3 * time.Second)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		return cl.ProduceSync(context.Background(), &kgo.Record{Value: []byte("franz-go")}).FirstErr()
	}
	if err := produce(kgo.SASL(plain.Auth{User: "app", Pass: testToken}.AsMechanism())); err != nil {
		t.Fatalf("with the token: %v", err)
	}
	if got := e.sink.wait(t, 1); string(got[0].Value) != "franz-go" {
		t.Fatalf("sink got %q", got[0].Value)
	}
	if err := produce(kgo.SASL(plain.Auth{User: "app", Pass: "wrong"}.AsMechanism())); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Errorf("wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	if err := produce(kgo.SASL(scram.Auth{User: "app", Pass: testToken}.AsSha256Mechanism())); err == nil {
		t.Error("SCRAM: produced")
	}
	if err := produce(); err == nil {
		t.Error("without SASL: produced")
	}
	if n := e.srv.m.records.Get(); n != 1 {
		t.Errorf("%d records spooled, want only the authenticated one", n)
	}
}
