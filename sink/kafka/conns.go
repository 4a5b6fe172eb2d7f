package kafka

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// connTracker dials the Writer's broker connections and remembers them, so
// that Close can cut every one of them when kafka-go does not finish in
// time: a request blocked on a dead connection then fails at once and
// kafka-go's goroutines wind down instead of waiting for their deadlines.
type connTracker struct {
	dialer net.Dialer

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
	// byDial finds the connection a kafka-go connect is setting up from
	// the context it passes to both Dial and the SASL mechanism (the same
	// deadline context: its Done channel identifies the attempt).
	byDial map[<-chan struct{}]*trackedConn
}

func (t *connTracker) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := t.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, t: t, dialKey: ctx.Done()}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		c.Close()
		return nil, ErrClosed
	}
	if t.conns == nil {
		t.conns = make(map[*trackedConn]struct{})
		t.byDial = make(map[<-chan struct{}]*trackedConn)
	}
	t.conns[tc] = struct{}{}
	if tc.dialKey != nil {
		t.byDial[tc.dialKey] = tc
	}
	return tc, nil
}

// connecting returns the connection being set up under ctx, or nil.
func (t *connTracker) connecting(ctx context.Context) *trackedConn {
	done := ctx.Done()
	if done == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byDial[done]
}

// connected forgets how c was dialled: it is set up.
func (t *connTracker) connected(c *trackedConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.dialKey != nil && t.byDial[c.dialKey] == c {
		delete(t.byDial, c.dialKey)
	}
}

// closeAll closes every open connection and refuses new ones.
func (t *connTracker) closeAll() {
	t.mu.Lock()
	t.closed = true
	conns := t.conns
	t.conns, t.byDial = nil, nil
	t.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
}

// open is the number of connections not closed yet.
func (t *connTracker) open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

type trackedConn struct {
	net.Conn
	t       *connTracker
	dialKey <-chan struct{}
	once    sync.Once
	// inSASL is set while a SASL exchange runs on the connection.
	inSASL atomic.Bool
}

// errSASLClosed: some brokers (and kfake) answer bad credentials by
// closing the connection instead of sending SASL_AUTHENTICATION_FAILED;
// kafka-go then reports a bare unexpected EOF.
var errSASLClosed = errors.New("broker closed the connection during SASL authentication (credentials or mechanism rejected?)")

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	return n, c.saslErr(err)
}

func (c *trackedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	return n, c.saslErr(err)
}

func (c *trackedConn) saslErr(err error) error {
	if err != nil && c.inSASL.Load() &&
		(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
		return &saslError{errSASLClosed}
	}
	return err
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.t.mu.Lock()
		delete(c.t.conns, c)
		if c.dialKey != nil && c.t.byDial[c.dialKey] == c {
			delete(c.t.byDial, c.dialKey)
		}
		c.t.mu.Unlock()
	})
	return c.Conn.Close()
}
