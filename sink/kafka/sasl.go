package kafka

import (
	"context"
	"errors"

	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// newMechanism builds the kafka-go SASL mechanism for c, wrapped so that
// failures of the client side of the exchange classify as auth.
func newMechanism(c *config, conns *connTracker) (sasl.Mechanism, error) {
	var (
		m   sasl.Mechanism
		err error
	)
	switch c.mechanism {
	case "":
		return nil, nil
	case "plain":
		m = plain.Mechanism{Username: c.SASL.Username, Password: c.SASL.Password}
	case "scram-sha-256":
		m, err = scram.Mechanism(scram.SHA256, c.SASL.Username, c.SASL.Password)
	case "scram-sha-512":
		m, err = scram.Mechanism(scram.SHA512, c.SASL.Username, c.SASL.Password)
	}
	if err != nil {
		// The underlying message may quote the credentials.
		return nil, errors.New("kafka: sasl: username or password not usable for SCRAM (SASLprep failed)")
	}
	return mechanism{m, conns}, nil
}

// mechanism marks the connection under authentication (see
// trackedConn.inSASL) and wraps client-side failures in saslError.
type mechanism struct {
	sasl.Mechanism
	conns *connTracker
}

func (m mechanism) Start(ctx context.Context) (sasl.StateMachine, []byte, error) {
	c := m.conns.connecting(ctx)
	s, ir, err := m.Mechanism.Start(ctx)
	if err != nil {
		return nil, nil, &saslError{err}
	}
	if c != nil {
		c.inSASL.Store(true)
	}
	return &stateMachine{StateMachine: s, conn: c, conns: m.conns}, ir, nil
}

type stateMachine struct {
	sasl.StateMachine
	conn  *trackedConn
	conns *connTracker
}

func (s *stateMachine) Next(ctx context.Context, challenge []byte) (bool, []byte, error) {
	done, resp, err := s.StateMachine.Next(ctx, challenge)
	if err != nil {
		return done, resp, &saslError{err}
	}
	if done && s.conn != nil {
		s.conn.inSASL.Store(false)
		s.conns.connected(s.conn)
	}
	return done, resp, nil
}
