package rabbitmq

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"regexp"
	"strconv"
	"syscall"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Reasons attached with sink.WithReason. They are metric label values.
const (
	ReasonNetwork            = "network"             // connection refused/reset/lost, broker closed the connection
	ReasonTimeout            = "timeout"             // dial, handshake, RPC or confirm wait past its deadline
	ReasonCanceled           = "canceled"            // the caller's context was cancelled
	ReasonClosed             = "closed"              // the Writer was closed
	ReasonTLS                = "tls"                 // handshake or certificate failure
	ReasonAuth               = "auth"                // login refused, no access to the vhost, no permission on the exchange
	ReasonBlocked            = "blocked"             // connection.blocked: broker memory or disk alarm
	ReasonNacked             = "nacked"              // basic.nack: a queue refused the message (full, reject-publish) or broker error
	ReasonUnroutable         = "unroutable"          // basic.return NO_ROUTE (transient within the grace)
	ReasonNoExchange         = "no_exchange"         // the exchange does not exist (transient within the grace)
	ReasonReturned           = "returned"            // basic.return with another code
	ReasonTooLarge           = "too_large"           // body above the broker's max_message_size
	ReasonInvalidDestination = "invalid_destination" // rendered exchange or routing key longer than 255 bytes
	ReasonInvalidHeader      = "invalid_header"      // header name longer than 255 bytes
	ReasonChannel            = "channel"             // the channel was closed under a batch for another message's fault
	ReasonBroker             = "broker"              // any other broker error code
	ReasonOther              = "other"               // not recognised: retried
)

// class is what an error means for the messages it hit.
type class struct {
	reason string
	// reached: the broker answered (an AMQP error code from the server).
	reached bool
	// down: the broker could not be reached or the connection was lost.
	down bool
}

// classify maps an error from amqp091-go or the network to its class.
// Unknown errors are transient: nothing is dropped on a guess.
func classify(err error) class {
	var (
		aerr     *amqp.Error
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
		return class{reason: ReasonClosed}
	case errors.Is(err, errBlocked):
		return class{reason: ReasonBlocked, reached: true}
	case errors.Is(err, context.Canceled):
		return class{reason: ReasonCanceled}
	case errors.Is(err, context.DeadlineExceeded):
		return class{reason: ReasonTimeout, down: true}
	case errors.As(err, &aerr):
		return classifyCode(aerr)
	case errors.As(err, &certErr), errors.As(err, &alertErr), errors.As(err, &recErr),
		errors.As(err, &uaErr), errors.As(err, &hostErr), errors.As(err, &invErr):
		return class{reason: ReasonTLS, down: true}
	case errors.As(err, &netErr) && netErr.Timeout():
		return class{reason: ReasonTimeout, down: true}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.As(err, &netErr):
		return class{reason: ReasonNetwork, down: true}
	}
	return class{reason: ReasonOther}
}

// classifyCode maps an AMQP error: a connection.close or channel.close
// from the broker (Server true), or one amqp091-go made up itself.
func classifyCode(e *amqp.Error) class {
	c := class{reached: e.Server}
	switch e.Code {
	case amqp.AccessRefused, amqp.NotAllowed:
		// Login refused (amqp091-go reports it with Server false), no
		// access to the vhost, no write permission on the exchange. A bad
		// credential rotation must not dead-letter the backlog.
		c.reason, c.reached = ReasonAuth, true
	case amqp.NotFound:
		c.reason = ReasonNoExchange
	case amqp.PreconditionFailed, amqp.ContentTooLarge:
		if _, ok := maxMessageSize(e); ok || e.Code == amqp.ContentTooLarge {
			c.reason = ReasonTooLarge
		} else {
			c.reason = ReasonBroker
		}
	case amqp.ConnectionForced:
		// The broker closed the connection: shutdown, restart, an operator.
		c.reason, c.down = ReasonNetwork, true
	case amqp.ChannelError, amqp.FrameError:
		if !e.Server {
			// amqp091-go: "channel/connection is not open", or a write on
			// a dead socket.
			c.reason, c.down = ReasonNetwork, true
			break
		}
		c.reason = ReasonBroker
	default:
		c.reason = ReasonBroker
	}
	return c
}

// tooLargeRE matches RabbitMQ's refusal of a message over max_message_size
// (406 PRECONDITION_FAILED, channel closed):
// "message size 4097 is larger than configured max size 4096".
var tooLargeRE = regexp.MustCompile(`message size (\d+) is larger than configured max size (\d+)`)

// maxMessageSize returns the limit a too-large refusal names.
func maxMessageSize(e *amqp.Error) (int, bool) {
	if e == nil {
		return 0, false
	}
	m := tooLargeRE.FindStringSubmatch(e.Reason)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[2])
	return n, err == nil
}
