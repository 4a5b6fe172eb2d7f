package nats

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reasons attached with sink.WithReason. They are metric label values.
const (
	ReasonNetwork        = "network"         // not connected, connection lost or refused
	ReasonTimeout        = "timeout"         // no PubAck within AckTimeout, too many pending, blocked socket write
	ReasonCanceled       = "canceled"        // the caller's context was cancelled
	ReasonClosed         = "closed"          // the Writer was closed
	ReasonTLS            = "tls"             // handshake or certificate failure
	ReasonAuth           = "auth"            // authorization violation, expired or revoked credentials, permissions violation
	ReasonNoStream       = "no_stream"       // no stream captures the subject (transient within NoStreamGrace)
	ReasonStreamFull     = "stream_full"     // stream or account limits reached with discard new
	ReasonUnavailable    = "unavailable"     // JetStream disabled, unavailable, out of resources, store failure
	ReasonInProgress     = "in_progress"     // the server is still storing an earlier copy with the same Nats-Msg-Id
	ReasonRejected       = "rejected"        // any other JetStream error (sealed stream, ...)
	ReasonTooLarge       = "too_large"       // over the server's max_payload or the stream's max_msg_size
	ReasonInvalidSubject = "invalid_subject" // the rendered subject is not a valid NATS subject
	ReasonInvalidHeader  = "invalid_header"  // a header name NATS cannot carry
	ReasonOther          = "other"           // none of the above: retried
)

// JetStream API error codes the sink tells apart (nats-server errors.json).
const (
	codeAccountResources      = 10002 // resource limits exceeded for account
	codeClusterNotAvailable   = 10008 // JetStream system temporarily unavailable
	codeInsufficientResources = 10023 // insufficient resources
	codeMemoryResources       = 10028 // insufficient memory resources available
	codeNotEnabledForAccount  = 10039 // JetStream not enabled for account
	codeStorageResources      = 10047 // insufficient storage resources available
	codeMessageTooLarge       = 10054 // message size exceeds maximum allowed
	codeStreamNotFound        = 10059 // stream not found
	codeNotEnabled            = 10076 // JetStream not enabled
	codeStoreFailed           = 10077 // {err}: "maximum messages exceeded", "maximum bytes exceeded", ...
	codeHeaderTooLarge        = 10097 // header size exceeds maximum allowed of 64k
	codeDuplicateInProgress   = 10158 // duplicate message id is in process
	codeLastSeqNotReady       = 10163 // expected last sequence per subject temporarily unavailable
)

// class is what an error means for the message it is about.
type class struct {
	reason string
	// permanent: sending the same message again cannot succeed.
	permanent bool
	// reached: a server answered.
	reached bool
}

// classify maps an error from nats.go, JetStream or the network to its
// class. Unknown errors are transient: nothing is dropped on a guess.
func classify(err error) class {
	var (
		jsErr    jetstream.JetStreamError
		netErr   net.Error
		certErr  *tls.CertificateVerificationError
		alertErr tls.AlertError
		recErr   tls.RecordHeaderError
		uaErr    x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invErr   x509.CertificateInvalidError
	)
	switch {
	case err == nil:
		return class{}
	case errors.Is(err, ErrClosed):
		return class{reason: ReasonClosed}
	case errors.Is(err, context.Canceled):
		return class{reason: ReasonCanceled}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, jetstream.ErrAsyncPublishTimeout),
		errors.Is(err, jetstream.ErrTooManyStalledMsgs), errors.Is(err, natsgo.ErrTimeout):
		return class{reason: ReasonTimeout}
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, natsgo.ErrNoResponders):
		return class{reason: ReasonNoStream, reached: true}
	case errors.As(err, &jsErr) && jsErr.APIError() != nil:
		return classifyAPI(jsErr.APIError())
	case errors.Is(err, natsgo.ErrMaxPayload):
		return class{reason: ReasonTooLarge, permanent: true}
	case errors.Is(err, natsgo.ErrBadHeaderMsg):
		return class{reason: ReasonInvalidHeader, permanent: true}
	case errors.Is(err, natsgo.ErrBadSubject):
		return class{reason: ReasonInvalidSubject, permanent: true}
	case errors.Is(err, natsgo.ErrAuthorization), errors.Is(err, natsgo.ErrAuthExpired),
		errors.Is(err, natsgo.ErrAuthRevoked), errors.Is(err, natsgo.ErrAccountAuthExpired),
		errors.Is(err, natsgo.ErrPermissionViolation):
		return class{reason: ReasonAuth, reached: true}
	case errors.As(err, &certErr), errors.As(err, &alertErr), errors.As(err, &recErr),
		errors.As(err, &uaErr), errors.As(err, &hostErr), errors.As(err, &invErr),
		errors.Is(err, natsgo.ErrSecureConnRequired), errors.Is(err, natsgo.ErrSecureConnWanted):
		return class{reason: ReasonTLS}
	case errors.Is(err, ErrNotConnected), errors.Is(err, natsgo.ErrDisconnected), errors.Is(err, natsgo.ErrConnectionClosed),
		errors.Is(err, natsgo.ErrConnectionReconnecting), errors.Is(err, natsgo.ErrReconnectBufExceeded),
		errors.Is(err, natsgo.ErrNoServers), errors.Is(err, natsgo.ErrStaleConnection),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		if errors.As(err, &netErr) && netErr.Timeout() {
			return class{reason: ReasonTimeout}
		}
		return class{reason: ReasonNetwork}
	case errors.As(err, &netErr):
		if netErr.Timeout() {
			return class{reason: ReasonTimeout}
		}
		return class{reason: ReasonNetwork}
	}
	// nats.go reports some server errors only as text.
	if s := strings.ToLower(err.Error()); strings.Contains(s, "authorization") || strings.Contains(s, "authentication") {
		return class{reason: ReasonAuth, reached: true}
	}
	return class{reason: ReasonOther}
}

// classifyAPI maps a JetStream API error (a PubAck with an error).
func classifyAPI(e *jetstream.APIError) class {
	c := class{reached: true}
	switch e.ErrorCode {
	case codeMessageTooLarge, codeHeaderTooLarge:
		c.reason, c.permanent = ReasonTooLarge, true
	case codeStreamNotFound:
		c.reason = ReasonNoStream
	case codeStoreFailed:
		// With discard new, a stream at max_msgs, max_bytes or
		// max_msgs_per_subject refuses new messages: full for everyone
		// until consumers or limits make room, so retried, not
		// dead-lettered. Other store failures (I/O) are transient too.
		if strings.Contains(strings.ToLower(e.Description), "maximum") {
			c.reason = ReasonStreamFull
		} else {
			c.reason = ReasonUnavailable
		}
	case codeAccountResources:
		c.reason = ReasonStreamFull
	case codeClusterNotAvailable, codeInsufficientResources, codeMemoryResources, codeStorageResources,
		codeNotEnabled, codeNotEnabledForAccount, codeLastSeqNotReady:
		c.reason = ReasonUnavailable
	case codeDuplicateInProgress:
		c.reason = ReasonInProgress
	default:
		if e.Code == 503 {
			c.reason = ReasonUnavailable
		} else {
			// A sealed stream, a configuration the server refuses: every
			// message would fail alike, so retry and alert rather than
			// dead-letter the backlog.
			c.reason = ReasonRejected
		}
	}
	return c
}
