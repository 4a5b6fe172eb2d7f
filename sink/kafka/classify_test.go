package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// Errors as kafka-go and the network produce them, wrapped the way kafka-go
// wraps them. The broker-code cases also run over TCP against kfake in
// TestProduceErrorClasses; these cover what a fake broker cannot easily
// produce.
func TestClassify(t *testing.T) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: err}}
	}
	for _, tc := range []struct {
		err    error
		reason string
		perm   bool
	}{
		{context.DeadlineExceeded, ReasonTimeout, false},
		{fmt.Errorf("x: %w", context.Canceled), ReasonCanceled, false},
		{ErrClosed, ReasonClosed, false},
		{io.EOF, ReasonNetwork, false},
		{fmt.Errorf("kafka.(*Client).Produce: %w", io.ErrUnexpectedEOF), ReasonNetwork, false},
		{io.ErrClosedPipe, ReasonNetwork, false},
		{net.ErrClosed, ReasonNetwork, false},
		{opErr(syscall.ECONNREFUSED), ReasonNetwork, false},
		{opErr(syscall.ECONNRESET), ReasonNetwork, false},
		{opErr(syscall.EPIPE), ReasonNetwork, false},
		{opErr(syscall.EHOSTUNREACH), ReasonNetwork, false},
		{&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, ReasonTimeout, false},
		{&net.DNSError{Err: "no such host", Name: "kafka", IsNotFound: true}, ReasonNetwork, false},
		{&net.DNSError{Err: "timeout", Name: "kafka", IsTimeout: true}, ReasonTimeout, false},
		{&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, ReasonTLS, false},
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, ReasonTLS, false},
		{&saslError{errors.New("server signature mismatch")}, ReasonAuth, false},
		{&saslError{errSASLClosed}, ReasonAuth, false},
		{protocol.NewErrNoLeader("t", 1), ReasonLeader, false},
		{protocol.NewErrNoPartition("t", 9), ReasonLeader, false},
		{protocol.NewErrNoTopic("t"), ReasonUnknownTopic, false},
		{fmt.Errorf("%w: msg", kafkago.SASLAuthenticationFailed), ReasonAuth, false},
		{kafkago.UnsupportedSASLMechanism, ReasonAuth, false},
		{kafkago.TopicAuthorizationFailed, ReasonAuth, false},
		{kafkago.ClusterAuthorizationFailed, ReasonAuth, false},
		{kafkago.LeaderNotAvailable, ReasonLeader, false},
		{kafkago.NotLeaderForPartition, ReasonLeader, false},
		{kafkago.FencedLeaderEpoch, ReasonLeader, false},
		{kafkago.NotEnoughReplicas, ReasonReplicas, false},
		{kafkago.NotEnoughReplicasAfterAppend, ReasonReplicas, false},
		{kafkago.RequestTimedOut, ReasonTimeout, false},
		{kafkago.NetworkException, ReasonNetwork, false},
		{kafkago.UnknownTopicOrPartition, ReasonUnknownTopic, false},
		{kafkago.ThrottlingQuotaExceeded, ReasonThrottled, false},
		{kafkago.UnsupportedCompressionType, ReasonUnsupported, false},
		{kafkago.InvalidRequiredAcks, ReasonUnsupported, false},
		{kafkago.KafkaStorageError, ReasonBroker, false},
		{kafkago.Unknown, ReasonBroker, false},
		{kafkago.Error(9999), ReasonBroker, false},
		{fmt.Errorf("%w: too big", kafkago.MessageSizeTooLarge), ReasonTooLarge, true},
		{kafkago.MessageTooLargeError{}, ReasonTooLarge, true},
		{kafkago.RecordListTooLarge, ReasonTooLarge, true},
		{kafkago.InvalidRecord, ReasonInvalidRecord, true},
		{kafkago.InvalidMessageSize, ReasonInvalidRecord, true},
		{kafkago.InvalidMessage, ReasonCorrupt, true},
		{kafkago.InvalidTimestamp, ReasonInvalidTimestamp, true},
		{kafkago.InvalidTopic, ReasonInvalidTopic, true},
		{errors.New("something new"), ReasonOther, false},
	} {
		c := classify(tc.err)
		if c.reason != tc.reason || c.permanent != tc.perm {
			t.Errorf("%T %v: reason %s permanent %v, want %s %v", tc.err, tc.err, c.reason, c.permanent, tc.reason, tc.perm)
		}
	}
}

// TestClassifyTLSAlert: a broker that requires a client certificate
// rejects a client without one with an alert that TLS 1.3 delivers on the
// client's first read, as a *net.OpError around an unexported type: it
// classifies as tls, not network.
func TestClassifyTLSAlert(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{RootCAs: pool})
	if err == nil {
		defer conn.Close()
		_, err = conn.Read(make([]byte, 1))
	}
	if err == nil {
		t.Fatal("no error without a client certificate")
	}
	if c := classify(fmt.Errorf("kafka: metadata: %w", err)); c.reason != ReasonTLS {
		t.Fatalf("%v: reason %s, want tls", err, c.reason)
	}
}
