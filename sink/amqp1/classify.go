package amqp1

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	amqp "github.com/Azure/go-amqp"
)

// Reasons attached with sink.WithReason. They are metric label values.
const (
	ReasonNetwork        = "network"         // connection refused/reset/closed, DNS, broker closed the connection
	ReasonTimeout        = "timeout"         // dial or Write deadline: no answer in time
	ReasonCanceled       = "canceled"        // the caller's context was cancelled
	ReasonClosed         = "closed"          // the Writer was closed
	ReasonTLS            = "tls"             // handshake or certificate failure
	ReasonAuth           = "auth"            // SASL failure, amqp:unauthorized-access
	ReasonDetached       = "detached"        // the broker detached the link or ended the session
	ReasonResourceLimit  = "resource_limit"  // amqp:resource-limit-exceeded (address full, quota)
	ReasonReleased       = "released"        // Released outcome: not processed, retry
	ReasonModified       = "modified"        // Modified outcome without undeliverable-here
	ReasonUnknownOutcome = "unknown_outcome" // settled without an outcome, or a non-terminal state
	ReasonSettleMode     = "settle_mode"     // the broker only offers pre-settled links
	ReasonBroker         = "broker"          // other broker errors (internal error, illegal state, ...)
	ReasonUnknownAddress = "unknown_address" // amqp:not-found (transient within the grace)
	ReasonNotSent        = "not_sent"        // held back: an earlier message to its address failed
	ReasonRejected       = "rejected"        // Rejected outcome: the broker refuses the message itself
	ReasonUndeliverable  = "undeliverable"   // Modified with undeliverable-here
	ReasonTooLarge       = "too_large"       // amqp:link:message-size-exceeded
	ReasonBadHeader      = "bad_header"      // repeated or reserved header name
	ReasonInvalidAddress = "invalid_address" // the address template rendered ""
	ReasonOther          = "other"           // not recognised: retried
)

// scope says what an error invalidates.
type scope int

const (
	scopeMessage scope = iota // this message only; the link is fine
	scopeLink                 // the link is gone: attach again
	scopeConn                 // the connection is gone or unusable: reconnect
)

// class is what an error means.
type class struct {
	reason    string
	permanent bool // about the message itself: retrying it cannot succeed
	scope     scope
	reached   bool // the broker answered
}

// transientRejections are conditions brokers put in a Rejected outcome for
// what is not the message's fault; retried, never dead-lettered.
var transientRejections = map[amqp.ErrCond]string{
	amqp.ErrCondResourceLimitExceeded: ReasonResourceLimit, // Artemis: address full (FAIL policy); quotas
	amqp.ErrCondUnauthorizedAccess:    ReasonAuth,          // Artemis: send permission missing
	amqp.ErrCondNotFound:              ReasonUnknownAddress,
	amqp.ErrCondInternalError:         ReasonBroker,
	amqp.ErrCondResourceLocked:        ReasonBroker,
	amqp.ErrCondResourceDeleted:       ReasonUnknownAddress,
	amqp.ErrCondIllegalState:          ReasonBroker,
	amqp.ErrCondTransferLimitExceeded: ReasonResourceLimit,
	amqp.ErrCondDetachForced:          ReasonDetached,
	amqp.ErrCondConnectionForced:      ReasonNetwork,
	"com.microsoft:server-busy":       ReasonResourceLimit, // Azure Service Bus throttling
	"com.microsoft:timeout":           ReasonTimeout,
	"com.microsoft:entity-disabled":   ReasonBroker,
	// Artemis's catch-all for any broker-side exception while routing a
	// message (address gone, storage failure): not about the message.
	conditionArtemisFailed: ReasonBroker,
}

// conditionArtemisFailed is the condition Artemis (2.x) puts in a Rejected
// outcome for every exception other than security and address-full ones,
// e.g. "AMQ119002: target address x does not exist" after the address
// was deleted under an attached link.
const conditionArtemisFailed amqp.ErrCond = "failed"

// permanentRejections name the reason of the conditions that are about the
// message; any condition not listed in either map is permanent with reason
// "rejected": that is what the Rejected outcome means.
var permanentRejections = map[amqp.ErrCond]string{
	amqp.ErrCondMessageSizeExceeded: ReasonTooLarge,
}

// classifyRejected maps the error of a Rejected outcome.
func classifyRejected(e *amqp.Error) class {
	if e == nil {
		return class{reason: ReasonRejected, permanent: true, reached: true}
	}
	if e.Condition == conditionArtemisFailed && strings.Contains(e.Description, "does not exist") {
		return class{reason: ReasonUnknownAddress, reached: true}
	}
	if r, ok := transientRejections[e.Condition]; ok {
		return class{reason: r, reached: true}
	}
	if r, ok := permanentRejections[e.Condition]; ok {
		return class{reason: r, permanent: true, reached: true}
	}
	return class{reason: ReasonRejected, permanent: true, reached: true}
}

// classify maps an error from go-amqp, the network or the context. Unknown
// errors are transient: nothing is dropped on a guess.
func classify(err error) class {
	var (
		amqpErr  *amqp.Error
		linkErr  *amqp.LinkError
		sessErr  *amqp.SessionError
		connErr  *amqp.ConnError
		netErr   net.Error
		certErr  *tls.CertificateVerificationError
		alertErr tls.AlertError
		recErr   tls.RecordHeaderError
		uaErr    x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invErr   x509.CertificateInvalidError
	)
	switch {
	case errors.Is(err, ErrClosed):
		return class{reason: ReasonClosed, scope: scopeConn}
	case errors.Is(err, context.Canceled):
		return class{reason: ReasonCanceled}
	case errors.Is(err, context.DeadlineExceeded):
		return class{reason: ReasonTimeout, scope: scopeConn}
	case isSASLFailure(err):
		return class{reason: ReasonAuth, scope: scopeConn, reached: true}
	case errors.As(err, &certErr), errors.As(err, &alertErr), errors.As(err, &recErr),
		errors.As(err, &uaErr), errors.As(err, &hostErr), errors.As(err, &invErr):
		return class{reason: ReasonTLS, scope: scopeConn}
	case errors.As(err, &connErr):
		c := conditionClass(connErr.RemoteErr, ReasonNetwork)
		c.scope = scopeConn
		return c
	case errors.As(err, &sessErr):
		c := conditionClass(sessErr.RemoteErr, ReasonDetached)
		c.scope = scopeConn // the session is gone: begin again on a new connection
		return c
	case errors.As(err, &linkErr):
		c := conditionClass(linkErr.RemoteErr, ReasonDetached)
		c.scope = scopeLink
		return c
	case errors.As(err, &amqpErr):
		// A bare *amqp.Error: an attach refused by the broker, or a
		// client-side check before sending (message size).
		if amqpErr.Condition == amqp.ErrCondMessageSizeExceeded {
			return class{reason: ReasonTooLarge, permanent: true}
		}
		c := conditionClass(amqpErr, ReasonBroker)
		c.scope = scopeLink
		return c
	case isSettleModeError(err):
		return class{reason: ReasonSettleMode, scope: scopeLink, reached: true}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		if errors.As(err, &netErr) && netErr.Timeout() {
			return class{reason: ReasonTimeout, scope: scopeConn}
		}
		return class{reason: ReasonNetwork, scope: scopeConn}
	case errors.As(err, &netErr):
		if netErr.Timeout() {
			return class{reason: ReasonTimeout, scope: scopeConn}
		}
		return class{reason: ReasonNetwork, scope: scopeConn}
	}
	return class{reason: ReasonOther, scope: scopeConn}
}

// conditionClass maps the AMQP error a broker sent when it closed a
// connection, session or link, or refused an attach. Such an error is
// never about one message: it is transient. def is the reason without a
// known condition.
func conditionClass(e *amqp.Error, def string) class {
	if e == nil {
		return class{reason: def}
	}
	c := class{reason: def, reached: true}
	switch e.Condition {
	case amqp.ErrCondUnauthorizedAccess:
		c.reason = ReasonAuth
	case amqp.ErrCondNotFound, amqp.ErrCondResourceDeleted:
		c.reason = ReasonUnknownAddress
	case amqp.ErrCondResourceLimitExceeded, amqp.ErrCondTransferLimitExceeded:
		c.reason = ReasonResourceLimit
	case amqp.ErrCondDetachForced, amqp.ErrCondStolen, amqp.ErrCondLinkRedirect:
		c.reason = ReasonDetached
	case amqp.ErrCondConnectionForced, amqp.ErrCondConnectionRedirect, amqp.ErrCondFramingError:
		c.reason = ReasonNetwork
	}
	return c
}

// isSASLFailure recognises go-amqp's SASL outcome error, which has no type
// of its own ("SASL PLAIN auth failed with code 0x1: ...").
func isSASLFailure(err error) bool {
	s := err.Error()
	return strings.Contains(s, "SASL") && strings.Contains(s, "auth failed")
}

// isSettleModeError recognises go-amqp's refusal of a link whose
// negotiated settlement mode differs from the requested one, and its
// refusal to track settlement on a pre-settled link.
func isSettleModeError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "settlement mode") || strings.Contains(s, "SenderSettleModeSettled")
}

// brokerError prints an AMQP error the broker sent as "condition:
// description" (go-amqp prints its struct) and keeps it in the chain.
type brokerError struct {
	prefix string
	err    error
	amqp   *amqp.Error
}

func (e *brokerError) Error() string { return e.prefix + describe(e.amqp) }
func (e *brokerError) Unwrap() error { return e.err }

// tidy makes the text of go-amqp errors that carry a broker's AMQP error
// readable; other errors are returned as they are.
func tidy(err error) error {
	var (
		linkErr *amqp.LinkError
		sessErr *amqp.SessionError
		connErr *amqp.ConnError
		amqpErr *amqp.Error
	)
	switch {
	case errors.As(err, &linkErr) && linkErr.RemoteErr != nil:
		return &brokerError{"link detached by the broker: ", err, linkErr.RemoteErr}
	case errors.As(err, &sessErr) && sessErr.RemoteErr != nil:
		return &brokerError{"session ended by the broker: ", err, sessErr.RemoteErr}
	case errors.As(err, &connErr) && connErr.RemoteErr != nil:
		return &brokerError{"connection closed by the broker: ", err, connErr.RemoteErr}
	case errors.As(err, &amqpErr) && err == error(amqpErr):
		return &brokerError{"", err, amqpErr}
	}
	return err
}
