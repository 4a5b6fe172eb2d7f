package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// Reasons attached with sink.WithReason. They are metric label values.
const (
	ReasonNetwork          = "network"           // connection refused/reset/closed, EOF on a stale connection, DNS
	ReasonTimeout          = "timeout"           // dial, request or Write deadline; broker REQUEST_TIMED_OUT
	ReasonCanceled         = "canceled"          // the caller's context was cancelled
	ReasonClosed           = "closed"            // the Writer was closed
	ReasonTLS              = "tls"               // handshake or certificate failure
	ReasonAuth             = "auth"              // SASL failure, topic/cluster authorization failure
	ReasonLeader           = "leader"            // leader not available, not leader, no leader, fenced epoch
	ReasonReplicas         = "replicas"          // not enough in-sync replicas
	ReasonThrottled        = "throttled"         // quota exceeded
	ReasonUnsupported      = "unsupported"       // broker rejects the request kind (version, codec, acks)
	ReasonBroker           = "broker"            // any other broker error code
	ReasonUnknownTopic     = "unknown_topic"     // topic does not exist (transient within grace)
	ReasonTooLarge         = "too_large"         // message or batch larger than allowed
	ReasonInvalidRecord    = "invalid_record"    // broker rejected a record (INVALID_RECORD, INVALID_MESSAGE_SIZE)
	ReasonCorrupt          = "corrupt"           // CORRUPT_MESSAGE
	ReasonInvalidTimestamp = "invalid_timestamp" // timestamp outside the topic's accepted range
	ReasonInvalidTopic     = "invalid_topic"     // name Kafka does not accept
	ReasonInvalidPartition = "invalid_partition" // explicit partition the topic does not have
	ReasonOther            = "other"             // none of the above: retried
)

// class is what an error means for the messages of the failed request.
type class struct {
	reason string
	// permanent: retrying the same request cannot succeed. Whether that is
	// about one message or the whole request is for the caller to decide
	// (a request with one message: that message).
	permanent bool
	// reached: a broker answered (the error is a Kafka error code).
	reached bool
	// reset: drop cached metadata and idle connections before the next
	// attempt (stale connection, moved leader, new topic).
	reset bool
}

// classify maps an error from kafka-go or the network to its class.
// Unknown errors are transient: nothing is dropped on a guess.
func classify(err error) class {
	var (
		kerr     kafkago.Error
		authErr  *saslError
		netErr   net.Error
		certErr  *tls.CertificateVerificationError
		alertErr tls.AlertError
		recErr   tls.RecordHeaderError
		uaErr    x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invErr   x509.CertificateInvalidError
		dnsErr   *net.DNSError
	)
	switch {
	case errors.Is(err, ErrClosed):
		return class{reason: ReasonClosed}
	case errors.Is(err, context.Canceled):
		return class{reason: ReasonCanceled}
	case errors.Is(err, context.DeadlineExceeded):
		return class{reason: ReasonTimeout, reset: true}
	case errors.As(err, &kerr):
		return classifyCode(kerr)
	case errors.As(err, &authErr):
		return class{reason: ReasonAuth, reached: true, reset: true}
	case errors.Is(err, protocol.ErrNoLeader), errors.Is(err, protocol.ErrNoPartition):
		return class{reason: ReasonLeader, reset: true}
	case errors.Is(err, protocol.ErrNoTopic):
		return class{reason: ReasonUnknownTopic, reset: true}
	case errors.As(err, &certErr), errors.As(err, &alertErr), errors.As(err, &recErr),
		errors.As(err, &uaErr), errors.As(err, &hostErr), errors.As(err, &invErr),
		isTLSAlert(err):
		return class{reason: ReasonTLS, reset: true}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.ErrClosedPipe),
		errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH):
		if errors.As(err, &netErr) && netErr.Timeout() {
			return class{reason: ReasonTimeout, reset: true}
		}
		return class{reason: ReasonNetwork, reset: true}
	case errors.As(err, &dnsErr):
		if dnsErr.IsTimeout {
			return class{reason: ReasonTimeout, reset: true}
		}
		return class{reason: ReasonNetwork, reset: true}
	case errors.As(err, &netErr):
		if netErr.Timeout() {
			return class{reason: ReasonTimeout, reset: true}
		}
		return class{reason: ReasonNetwork, reset: true}
	}
	return class{reason: ReasonOther, reset: true}
}

// classifyCode maps a Kafka protocol error code.
func classifyCode(code kafkago.Error) class {
	c := class{reached: true}
	switch code {
	// About the records of the request: retrying the same request cannot
	// succeed. kafka-go fails a whole partition batch for them.
	case kafkago.MessageSizeTooLarge, kafkago.RecordListTooLarge:
		c.reason, c.permanent = ReasonTooLarge, true
	case kafkago.InvalidRecord, kafkago.InvalidMessageSize:
		c.reason, c.permanent = ReasonInvalidRecord, true
	case kafkago.InvalidMessage: // CORRUPT_MESSAGE
		c.reason, c.permanent = ReasonCorrupt, true
	case kafkago.InvalidTimestamp:
		c.reason, c.permanent = ReasonInvalidTimestamp, true
	case kafkago.InvalidTopic:
		c.reason, c.permanent = ReasonInvalidTopic, true

	case kafkago.UnknownTopicOrPartition, kafkago.UnknownTopicID, kafkago.InconsistentTopicID:
		c.reason, c.reset = ReasonUnknownTopic, true
	case kafkago.LeaderNotAvailable, kafkago.NotLeaderForPartition, kafkago.BrokerNotAvailable,
		kafkago.ReplicaNotAvailable, kafkago.NotController, kafkago.FencedLeaderEpoch,
		kafkago.UnknownLeaderEpoch, kafkago.PreferredLeaderNotAvailable,
		kafkago.EligibleLeadersNotAvailable, kafkago.ListenerNotFound:
		c.reason, c.reset = ReasonLeader, true
	case kafkago.NotEnoughReplicas, kafkago.NotEnoughReplicasAfterAppend:
		c.reason = ReasonReplicas
	case kafkago.RequestTimedOut:
		c.reason = ReasonTimeout
	case kafkago.NetworkException:
		c.reason, c.reset = ReasonNetwork, true
	case kafkago.SASLAuthenticationFailed, kafkago.UnsupportedSASLMechanism, kafkago.IllegalSASLState,
		kafkago.TopicAuthorizationFailed, kafkago.ClusterAuthorizationFailed,
		kafkago.TransactionalIDAuthorizationFailed, kafkago.BrokerAuthorizationFailed,
		kafkago.UnacceptableCredential, kafkago.DelegationTokenAuthorizationFailed,
		kafkago.DelegationTokenExpired, kafkago.SecurityDisabled:
		c.reason, c.reset = ReasonAuth, true
	case kafkago.ThrottlingQuotaExceeded:
		c.reason = ReasonThrottled
	case kafkago.InvalidRequiredAcks, kafkago.UnsupportedVersion, kafkago.UnsupportedForMessageFormat,
		kafkago.UnsupportedCompressionType, kafkago.InvalidRequest, kafkago.PolicyViolation:
		// Configuration or broker version: every message would fail the
		// same way, so dead-lettering would empty the backlog. Retry and
		// alert instead.
		c.reason = ReasonUnsupported
	default:
		// KAFKA_STORAGE_ERROR, UNKNOWN_SERVER_ERROR, producer-id and
		// sequence errors (no idempotent producer here), codes added later.
		c.reason = ReasonBroker
	}
	return c
}

// saslError marks an error of the client side of a SASL exchange (bad
// server signature, unusable credentials) so it classifies as auth.
type saslError struct{ err error }

func (e *saslError) Error() string { return "sasl: " + e.err.Error() }
func (e *saslError) Unwrap() error { return e.err }

// isTLSAlert reports whether err carries an alert the broker sent during
// or right after the TLS handshake ("remote error: tls: certificate
// required" when mutual TLS lacks a client certificate). crypto/tls
// returns received alerts as an unexported type inside a *net.OpError, so
// only the text tells them from a plain network error; with TLS 1.3 the
// client learns of a rejected certificate on its first read.
func isTLSAlert(err error) bool {
	return err != nil && strings.Contains(err.Error(), "remote error: tls: ")
}
