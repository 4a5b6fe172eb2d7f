package nats

import (
	"net"
	"sync"
	"time"
)

// dialer is the nats.go CustomDialer of a Writer: it bounds connecting by
// ConnectTimeout and keeps every connection it made, so that Close can cut
// them when a socket write to a hung server would otherwise hold nats.go's
// connection lock past Close's deadline.
type dialer struct {
	timeout time.Duration

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

func newDialer(timeout time.Duration) *dialer {
	return &dialer{timeout: timeout, conns: make(map[*trackedConn]struct{})}
}

// Dial implements nats.CustomDialer.
func (d *dialer) Dial(network, address string) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: d.timeout, KeepAlive: 30 * time.Second}).Dial(network, address)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, d: d}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	d.conns[tc] = struct{}{}
	return tc, nil
}

// closeAll closes every connection and refuses new ones.
func (d *dialer) closeAll() {
	d.mu.Lock()
	d.closed = true
	conns := d.conns
	d.conns = make(map[*trackedConn]struct{})
	d.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
}

type trackedConn struct {
	net.Conn
	d    *dialer
	once sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.d.mu.Lock()
		delete(c.d.conns, c)
		c.d.mu.Unlock()
	})
	return err
}
