package kafkaproto

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/IBM/sarama"
	kafkago "github.com/segmentio/kafka-go"
	kafkagoplain "github.com/segmentio/kafka-go/sasl/plain"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// authedConn dials and authenticates with handshake v1 + authenticate v2.
func authedConn(t *testing.T, addr string) *rawConn {
	t.Helper()
	r := dial(t, addr)
	if hs := r.handshake("PLAIN"); hs.ErrorCode != 0 {
		t.Fatalf("handshake: %v", kerr.ErrorForCode(hs.ErrorCode))
	}
	if a := r.authenticate("\x00u\x00" + testToken); a.ErrorCode != 0 {
		t.Fatalf("authenticate: %v", kerr.ErrorForCode(a.ErrorCode))
	}
	return r
}

// TestUnauthenticatedRequestClosedBeforeItsBody: before authentication, a
// request other than ApiVersions or SASL's closes the connection as soon
// as its key is read, without waiting for its body (this waited for the
// body, for ReadTimeout, before the key was checked).
func TestUnauthenticatedRequestClosedBeforeItsBody(t *testing.T) {
	e := start(t, t.TempDir(), Options{Token: testToken, ReadTimeout: time.Hour})
	for name, key := range map[string]uint16{"produce": keyProduce, "metadata": keyMetadata, "fetch": 1} {
		r := dial(t, e.srv.Addr())
		b := binary.BigEndian.AppendUint32(nil, 1000) // a 1000-byte frame
		b = binary.BigEndian.AppendUint16(b, key)     // its key
		b = binary.BigEndian.AppendUint16(b, 7)       // and version
		r.send(b)
		if !closedWithin(r, 10*time.Second) {
			t.Errorf("%s key before authentication: connection still open 10 s after its key (server waits for the body)", name)
		}
	}
}

// TestUnauthenticatedFramesDoNotHoldTheBudget: frames before
// authentication are not charged to the in-flight budget producers share.
// They were charged 1024 times their size before their body arrived: four
// connections without the token, each sending only the size (16 KiB) and
// key of an ApiVersions frame, held the whole default 64 MiB, and an
// authenticated producer's request waited behind them for ReadTimeout.
func TestUnauthenticatedFramesDoNotHoldTheBudget(t *testing.T) {
	e := start(t, t.TempDir(), Options{Token: testToken, ReadTimeout: time.Hour}) // the default 64 MiB budget
	good := authedConn(t, e.srv.Addr())
	for i := 0; i < 4; i++ {
		r := dial(t, e.srv.Addr())
		b := binary.BigEndian.AppendUint32(nil, maxSmallControlBytes)
		b = binary.BigEndian.AppendUint16(b, keyApiVersions)
		b = binary.BigEndian.AppendUint16(b, 3) // version: the 4 bytes the server reads before charging
		r.send(b)
	}
	time.Sleep(200 * time.Millisecond) // let the server charge them
	good.corr++
	good.send(frame(produceReq("t", 0, -1, recordBatch(-1, -1, 0, 0, "authed")), good.corr))
	start := time.Now()
	_ = good.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var size [4]byte
	_, err := good.c.Read(size[:])
	if err != nil {
		t.Errorf("authenticated produce: no answer %v after 4 unauthenticated 8-byte writes (%v)", time.Since(start).Round(time.Millisecond), err)
	}
}

// TestUnauthenticatedConnectionsMustLogInWithinReadTimeout: a connection
// that has not authenticated ReadTimeout after it connected is closed, so
// connections without the token cannot hold MaxConnections against
// producers with it (they were kept for IdleTimeout, 10 min).
func TestUnauthenticatedConnectionsMustLogInWithinReadTimeout(t *testing.T) {
	e := start(t, t.TempDir(), Options{Token: testToken, MaxConnections: 4, ReadTimeout: 2 * time.Second, IdleTimeout: time.Hour})
	var idle []*rawConn
	for range 4 {
		r := dial(t, e.srv.Addr())
		r.advertises(keyApiVersions) // connected, nothing else
		idle = append(idle, r)
	}
	for i, r := range idle {
		if !closedWithin(r, time.Minute) {
			t.Fatalf("unauthenticated connection %d still open", i)
		}
	}
	// The server counts a connection out just after closing it: a dial
	// in between is refused, so try again.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := dial(t, e.srv.Addr())
		r.corr++
		r.send(frame(&kmsg.SASLHandshakeRequest{Version: 1, Mechanism: "PLAIN"}, r.corr))
		_, err := r.readFrame()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a new client is still refused after the unauthenticated connections were closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// An authenticated connection is kept past ReadTimeout.
	r := authedConn(t, e.srv.Addr())
	time.Sleep(3 * time.Second)
	if p := r.produce("t", 0, recordBatch(-1, -1, 0, 0, "later")); p.ErrorCode != 0 {
		t.Fatalf("produce: %v", kerr.ErrorForCode(p.ErrorCode))
	}
}

// handshake + authenticate + produce pipelined in one write: three
// answers in order, the record spooled.
func TestSASLPipelinedHandshakeAuthProduce(t *testing.T) {
	e := start(t, t.TempDir(), Options{Token: testToken})
	r := dial(t, e.srv.Addr())
	var b []byte
	b = append(b, frame(&kmsg.SASLHandshakeRequest{Version: 1, Mechanism: "PLAIN"}, 1)...)
	b = append(b, frame(&kmsg.SASLAuthenticateRequest{Version: 2, SASLAuthBytes: []byte("\x00u\x00" + testToken)}, 2)...)
	b = append(b, frame(produceReq("t", 0, -1, recordBatch(-1, -1, 0, 0, "pipelined")), 3)...)
	r.send(b)
	hs := kmsg.NewPtrSASLHandshakeResponse()
	hs.Version = 1
	r.read(hs, 1)
	au := kmsg.NewPtrSASLAuthenticateResponse()
	au.Version = 2
	r.read(au, 2)
	pr := kmsg.NewPtrProduceResponse()
	pr.Version = 7
	r.read(pr, 3)
	if hs.ErrorCode != 0 || au.ErrorCode != 0 || pr.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("codes %d %d %d", hs.ErrorCode, au.ErrorCode, pr.Topics[0].Partitions[0].ErrorCode)
	}
	e.sink.wait(t, 1)
}

// a wrong authenticate followed in the same write by a produce (and
// by an acks=0 produce): the failure is answered, the connection closed,
// the produce never read, nothing spooled. Same after a wrong bare PLAIN
// (handshake v0), and after an authenticate without a handshake.
func TestSASLPipelinedWrongAuthThenProduceIgnored(t *testing.T) {
	e := start(t, t.TempDir(), Options{Token: testToken})
	prod := append(frame(produceReq("t", 0, -1, recordBatch(-1, -1, 0, 0, "evil")), 3),
		frame(produceReq("t", 0, 0, recordBatch(-1, -1, 0, 0, "evil0")), 4)...)

	r := dial(t, e.srv.Addr())
	var b []byte
	b = append(b, frame(&kmsg.SASLHandshakeRequest{Version: 1, Mechanism: "PLAIN"}, 1)...)
	b = append(b, frame(&kmsg.SASLAuthenticateRequest{Version: 2, SASLAuthBytes: []byte("\x00u\x00wrong")}, 2)...)
	r.send(append(b, prod...))
	hs := kmsg.NewPtrSASLHandshakeResponse()
	hs.Version = 1
	r.read(hs, 1)
	au := kmsg.NewPtrSASLAuthenticateResponse()
	au.Version = 2
	r.read(au, 2)
	if kerr.ErrorForCode(au.ErrorCode) != kerr.SaslAuthenticationFailed {
		t.Errorf("authenticate: %v", kerr.ErrorForCode(au.ErrorCode))
	}
	if !r.closed() {
		t.Error("not closed")
	}

	r = dial(t, e.srv.Addr())
	b = frame(&kmsg.SASLHandshakeRequest{Version: 0, Mechanism: "PLAIN"}, 1)
	msg := "\x00u\x00wrong"
	b = append(binary.BigEndian.AppendUint32(b, uint32(len(msg))), msg...)
	r.send(append(b, prod...))
	r.read(kmsg.NewPtrSASLHandshakeResponse(), 1)
	if !r.closed() {
		t.Error("not closed after wrong bare PLAIN")
	}

	r = dial(t, e.srv.Addr())
	b = frame(&kmsg.SASLAuthenticateRequest{Version: 1, SASLAuthBytes: []byte("\x00u\x00" + testToken)}, 1)
	r.send(append(b, prod...))
	au = kmsg.NewPtrSASLAuthenticateResponse()
	au.Version = 1
	r.read(au, 1)
	if kerr.ErrorForCode(au.ErrorCode) != kerr.IllegalSaslState {
		t.Errorf("authenticate without handshake: %v", kerr.ErrorForCode(au.ErrorCode))
	}
	if !r.closed() {
		t.Error("not closed")
	}
	time.Sleep(300 * time.Millisecond)
	if n := e.srv.m.records.Get(); n != 0 {
		t.Errorf("%d records spooled after refused authentications", n)
	}
}

// the bare PLAIN frame after a handshake v0 of size 0, 16 KiB+1,
// 0xFFFFFFFF (-1 as int32) or 0x80000000 closes the connection, nothing
// spooled; a normal request sent where the bare frame is expected is
// taken as the PLAIN message and refused.
func TestSASLHandshakeV0BareFrameSizes(t *testing.T) {
	e := start(t, t.TempDir(), Options{Token: testToken, ReadTimeout: time.Hour})
	hs := frame(&kmsg.SASLHandshakeRequest{Version: 0, Mechanism: "PLAIN"}, 1)
	for _, tail := range [][]byte{
		binary.BigEndian.AppendUint32(nil, 0),
		binary.BigEndian.AppendUint32(nil, maxSmallControlBytes+1),
		binary.BigEndian.AppendUint32(nil, 0xFFFFFFFF),
		binary.BigEndian.AppendUint32(nil, 0x80000000),
		frame(produceReq("t", 0, -1, recordBatch(-1, -1, 0, 0, "x")), 2),
		frame(&kmsg.SASLAuthenticateRequest{Version: 0, SASLAuthBytes: []byte("\x00u\x00" + testToken)}, 2),
	} {
		r := dial(t, e.srv.Addr())
		r.send(append(append([]byte(nil), hs...), tail...))
		resp := kmsg.NewPtrSASLHandshakeResponse()
		r.read(resp, 1)
		if !closedWithin(r, 3*time.Second) {
			t.Errorf("bare frame %x...: not closed", tail[:4])
		}
	}
	if n := e.srv.m.records.Get(); n != 0 {
		t.Errorf("%d records spooled", n)
	}
}

// SASL requests at versions not advertised close the connection
// without an answer, before and after authentication.
func TestSASLUnadvertisedVersionsClose(t *testing.T) {
	e := start(t, t.TempDir(), Options{Token: testToken})
	for _, req := range []kmsg.Request{
		&kmsg.SASLHandshakeRequest{Version: 2, Mechanism: "PLAIN"},
		&kmsg.SASLAuthenticateRequest{Version: 3, SASLAuthBytes: []byte("\x00u\x00" + testToken)},
		&kmsg.SASLHandshakeRequest{Version: -1, Mechanism: "PLAIN"},
	} {
		r := dial(t, e.srv.Addr())
		r.send(frame(req, 7))
		if !r.closed() {
			t.Errorf("key %d v%d: not closed", req.Key(), req.GetVersion())
		}
	}
}

// ApiVersions v0..v3 list SaslHandshake 0-1 and SaslAuthenticate 0-2
// with a token, with the right correlation id; ApiVersions v4 gets the
// KIP-511 fallback; SaslAuthenticate v0, v1, v2 each authenticate.
func TestSASLApiVersionsAndAuthenticateVersions(t *testing.T) {
	e := start(t, t.TempDir(), Options{Token: testToken})
	for v := int16(0); v <= 3; v++ {
		r := dial(t, e.srv.Addr())
		req := &kmsg.ApiVersionsRequest{Version: v, ClientSoftwareName: "t", ClientSoftwareVersion: "1"}
		resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
		r.request(req, resp)
		got := map[int16][2]int16{}
		for _, k := range resp.ApiKeys {
			got[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
		}
		if got[17] != [2]int16{0, 1} || got[36] != [2]int16{0, 2} {
			t.Errorf("ApiVersions v%d: 17=%v 36=%v", v, got[17], got[36])
		}
	}
	for v := int16(0); v <= 2; v++ {
		r := dial(t, e.srv.Addr())
		r.handshake("PLAIN")
		req := &kmsg.SASLAuthenticateRequest{Version: v, SASLAuthBytes: []byte("user\x00user\x00" + testToken)}
		resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		r.request(req, resp)
		if resp.ErrorCode != 0 {
			t.Fatalf("authenticate v%d: %v", v, kerr.ErrorForCode(resp.ErrorCode))
		}
		if p := r.produce("t", 0, recordBatch(-1, -1, 0, 0, "v")); p.ErrorCode != 0 {
			t.Fatalf("produce after authenticate v%d: %v", v, kerr.ErrorForCode(p.ErrorCode))
		}
	}
	e.sink.wait(t, 3)
}

// Sarama (handshake v1 + SaslAuthenticate v0, and handshake v0 +
// bare frame) and kafka-go produce with the token.
func TestSASLSaramaAndKafkaGoAuthenticate(t *testing.T) {
	e := start(t, t.TempDir(), Options{Token: testToken, Partitions: map[string]int32{"t": 1}})
	for _, hv := range []int16{sarama.SASLHandshakeV1, sarama.SASLHandshakeV0} {
		cfg := sarama.NewConfig()
		cfg.Version = sarama.V2_8_0_0
		cfg.Producer.Return.Successes = true
		cfg.Producer.RequiredAcks = sarama.WaitForAll
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		cfg.Net.SASL.User, cfg.Net.SASL.Password = "app", testToken
		cfg.Net.SASL.Version = hv
		cfg.Net.SASL.Handshake = true
		cfg.ApiVersionsRequest = hv != sarama.SASLHandshakeV0 // sarama refuses v0 with it
		p, err := sarama.NewSyncProducer([]string{e.srv.Addr()}, cfg)
		if err != nil {
			t.Fatalf("sarama handshake v%d: %v", hv, err)
		}
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "t", Value: sarama.StringEncoder("sarama")}); err != nil {
			t.Errorf("sarama handshake v%d: %v", hv, err)
		}
		p.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w := &kafkago.Writer{Addr: kafkago.TCP(e.srv.Addr()), Topic: "t", RequiredAcks: kafkago.RequireAll, BatchTimeout: time.Millisecond,
		MaxAttempts: 1, Transport: &kafkago.Transport{SASL: kafkagoplain.Mechanism{Username: "kafka-go", Password: testToken}}}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafkago.Message{Value: []byte("kafka-go")}); err != nil {
		t.Errorf("kafka-go: %v", err)
	}
	e.sink.wait(t, 3)
}
