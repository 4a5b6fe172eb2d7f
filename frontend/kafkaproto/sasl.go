package kafkaproto

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SASL/PLAIN authentication, on when Options.Token is set: a connection
// may send ApiVersions, SaslHandshake (v1, mechanism PLAIN) and
// SaslAuthenticate, and nothing else, until it authenticated with the
// token as its password, and must do so within ReadTimeout of connecting.
// Its frames are at most maxSmallControlBytes and not charged to the
// in-flight budget (serveConn). What Kafka's broker does, and so what
// clients expect:
//
//   - any other request first closes the connection (Kafka: "Unexpected
//     Kafka request ... during SASL handshake");
//   - a mechanism other than PLAIN gets UNSUPPORTED_SASL_MECHANISM, and a
//     SaslAuthenticate without a handshake before it, or a handshake once
//     authenticated, ILLEGAL_SASL_STATE; both then close the connection;
//   - a wrong password gets SASL_AUTHENTICATION_FAILED, then the
//     connection is closed; clients treat it as fatal, not retriable;
//   - the session does not expire (session lifetime 0: no
//     re-authentication, KIP-368).
//
// SaslHandshake v0 is served too: librdkafka enables SASL PLAIN only when
// a broker advertises it (and then uses v1), and clients older than Kafka
// 1.0 send the PLAIN message after it as a bare size-prefixed frame, which
// gets an empty frame back on success and a closed connection otherwise.

const (
	keySaslHandshake    = 17
	keySaslAuthenticate = 36
)

// saslAPIs are advertised beside the others when a token is set.
var saslAPIs = map[int16]apiRange{
	keySaslHandshake:    {0, 1},
	keySaslAuthenticate: {0, 2},
}

// session is a connection's authentication state.
type session struct {
	authed    bool // no token is set, or the connection presented it
	handshake bool // a SaslHandshake v1 chose PLAIN: SaslAuthenticate may follow
	rawPlain  bool // a SaslHandshake v0 chose PLAIN: the next frame is the bare PLAIN message
}

// errUnauthenticated closes a connection that sent a request other than
// ApiVersions or SASL's before it authenticated.
var errUnauthenticated = errors.New("request before SASL authentication")

// errAnswerThenClose: send the response the handler returned, then close
// the connection (a refused SASL exchange).
var errAnswerThenClose = errors.New("SASL refused")

// preAuth says whether key may be sent before the connection authenticated.
func preAuth(key int16) bool {
	return key == keyApiVersions || key == keySaslHandshake || key == keySaslAuthenticate
}

func (s *Server) saslHandshake(st *session, req *kmsg.SASLHandshakeRequest) (response, error) {
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = []string{"PLAIN"}
	switch {
	case st.authed || st.handshake || st.rawPlain:
		resp.ErrorCode = kerr.IllegalSaslState.Code
	case req.Mechanism != "PLAIN":
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
	case req.Version == 0:
		st.rawPlain = true
		return resp, nil
	default:
		st.handshake = true
		return resp, nil
	}
	s.m.authFailures.Inc()
	return resp, errAnswerThenClose
}

func (s *Server) saslAuthenticate(st *session, req *kmsg.SASLAuthenticateRequest) (response, error) {
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	fail := func(code int16, msg string) (response, error) {
		s.m.authFailures.Inc()
		resp.ErrorCode, resp.ErrorMessage = code, &msg
		return resp, errAnswerThenClose
	}
	if st.authed || !st.handshake {
		return fail(kerr.IllegalSaslState.Code, "SaslAuthenticate without a SaslHandshake for PLAIN before it")
	}
	if !plainPasswordIs(req.SASLAuthBytes, s.opts.Token) {
		return fail(kerr.SaslAuthenticationFailed.Code, "authentication failed: invalid username or password (the password is SLUICE_AUTH_TOKEN)")
	}
	st.authed, st.handshake = true, false
	return resp, nil
}

// plainPasswordIs parses a SASL PLAIN message (RFC 4616: authzid NUL
// authcid NUL passwd; Kafka's rules: a non-empty user, an authzid that is
// empty or the user) and says whether its password is token, compared in
// constant time. Any user name is taken: the token is the credential.
func plainPasswordIs(msg []byte, token string) bool {
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 || len(parts[2]) == 0 {
		return false
	}
	if len(parts[0]) > 0 && !bytes.Equal(parts[0], parts[1]) {
		return false
	}
	return subtle.ConstantTimeCompare(parts[2], []byte(token)) == 1
}

// rawPlain reads the bare PLAIN message of size bytes that follows a
// SaslHandshake v0 and answers it: an empty frame when its password is the
// token; false (close the connection) otherwise.
func (s *Server) rawPlain(c net.Conn, st *session, size int) bool {
	st.rawPlain = false
	if size < 0 || size > maxSmallControlBytes { // < 0: a 32-bit int
		s.closeBad(c, fmt.Errorf("SASL PLAIN message of %d bytes", size))
		return false
	}
	msg := make([]byte, size)
	if _, err := io.ReadFull(c, msg); err != nil {
		return false
	}
	if !plainPasswordIs(msg, s.opts.Token) {
		s.m.authFailures.Inc()
		s.closeBad(c, errors.New("SASL PLAIN (after a SaslHandshake v0): authentication failed"))
		return false
	}
	st.authed = true
	_ = c.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
	_, err := c.Write(make([]byte, 4))
	return err == nil
}
