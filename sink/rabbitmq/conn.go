package rabbitmq

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// errBlocked is the cause of messages not sent, or not confirmed, because
// the broker blocks the connection (connection.blocked).
var errBlocked = errors.New("rabbitmq: the broker blocks publishing (connection.blocked: memory or disk alarm)")

// errConnLost stands for a connection or channel that ended without an
// AMQP error (closed by the client, or the socket died).
var errConnLost = errors.New("rabbitmq: connection lost")

// connection is one AMQP connection, the goroutine that watches it, and its
// publishing channel.
//
// raw is the TCP socket under TLS and AMQP. Closing it ends everything at
// once: a publish stuck writing to a broker that stopped reading, an RPC
// without an answer, amqp091-go's reader and heartbeater. That is how every
// wait on the broker is bounded: amqp091-go's own calls take no context,
// and its Close waits for the broker's answer.
type connection struct {
	amqp *amqp.Connection
	raw  net.Conn

	blockedMu sync.Mutex
	blocked   bool
	blockedBy string        // the broker's reason
	blockedCh chan struct{} // closed when the connection becomes blocked; replaced when it is unblocked

	dead    chan struct{} // closed when the connection is gone
	deadErr error         // valid once dead is closed

	// pub is the publishing channel in confirm mode, nil until needed and
	// after it was retired. Only the Write holding Writer.writeMu uses it.
	pub *pubChannel

	bg sync.WaitGroup // watch, channel loops, retired channels' close
}

// dial opens a connection. ctx bounds it (and Close, through ctx): when
// ctx ends, the socket being set up is closed, so DialConfig returns.
func (w *Writer) dial(ctx context.Context) (*connection, error) {
	var (
		mu      sync.Mutex
		raw     net.Conn
		aborted bool
	)
	dialer := func(network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: w.cfg.DialTimeout, KeepAlive: 30 * time.Second}
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		// Bounds the TLS and AMQP handshakes; amqp091-go clears it once
		// the connection is open (heartbeats take over).
		if err := c.SetDeadline(time.Now().Add(w.cfg.DialTimeout)); err != nil {
			c.Close()
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		if aborted {
			c.Close()
			return nil, ctx.Err()
		}
		raw = c
		return c, nil
	}
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		aborted = true
		if raw != nil {
			raw.Close()
		}
	})
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("sluice/" + w.cfg.Name)
	cfg := amqp.Config{Dial: dialer, Heartbeat: w.cfg.Heartbeat, Properties: props}
	if w.cfg.TLS != nil {
		cfg.TLSClientConfig = w.cfg.TLS.Clone() // DialConfig writes ServerName into it
	}
	ac, err := amqp.DialConfig(w.cfg.URL, cfg)
	if !stop() {
		// ctx ended: the socket is closed, whatever DialConfig said.
		if err == nil {
			err = ctx.Err()
		}
		return nil, w.contextError(ctx, err)
	}
	if err != nil {
		return nil, err
	}
	c := &connection{amqp: ac, raw: raw, blockedCh: make(chan struct{}), dead: make(chan struct{})}
	closes := ac.NotifyClose(make(chan *amqp.Error, 1))
	blocks := ac.NotifyBlocked(make(chan amqp.Blocking, 4))
	c.bg.Add(1)
	go c.watch(w, closes, blocks)
	return c, nil
}

// watch follows the connection's blocked state until it closes. It never
// blocks: amqp091-go gives up delivering a notification after 5 s.
func (c *connection) watch(w *Writer, closes chan *amqp.Error, blocks chan amqp.Blocking) {
	defer c.bg.Done()
	for {
		select {
		case b, ok := <-blocks:
			if !ok {
				blocks = nil
				continue
			}
			// The gauge first: a Write that fails because the
			// connection is blocked finds the gauge already saying why.
			w.noteBlocked(b.Active, b.Reason)
			c.setBlocked(b.Active, b.Reason)
		case e, ok := <-closes:
			var err error = errConnLost
			if ok && e != nil {
				err = e
			}
			c.deadErr = err
			close(c.dead)
			return
		}
	}
}

func (c *connection) setBlocked(on bool, reason string) {
	c.blockedMu.Lock()
	defer c.blockedMu.Unlock()
	switch {
	case on && !c.blocked:
		c.blocked, c.blockedBy = true, reason
		close(c.blockedCh)
	case !on && c.blocked:
		c.blocked, c.blockedBy = false, ""
		c.blockedCh = make(chan struct{})
	}
}

// blockedState returns whether the connection is blocked, the broker's
// reason, and a channel closed when it becomes blocked.
func (c *connection) blockedState() (bool, string, <-chan struct{}) {
	c.blockedMu.Lock()
	defer c.blockedMu.Unlock()
	return c.blocked, c.blockedBy, c.blockedCh
}

func (c *connection) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// kill closes the socket: every pending call on the connection fails at
// once and the broker sees the connection drop (it keeps what it
// confirmed; what it did not is sent again).
func (c *connection) kill() {
	c.raw.Close()
}

// close closes the connection politely (connection.close, waiting for the
// broker's close-ok) unless ctx ends first, then kills it, and waits for
// the connection's goroutines. It returns ctx's error if it had to kill.
func (c *connection) close(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.amqp.Close() // ErrClosed when already gone: nothing to do
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		c.kill()
		<-done // returns once the socket is closed
	}
	c.kill() // also when the broker answered: nothing reads the socket any more
	c.bg.Wait()
	return err
}

// do runs the blocking amqp091-go call f, bounded by ctx: when ctx ends
// first the connection is killed, which makes f return.
func (c *connection) do(ctx context.Context, f func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		c.kill()
		<-done
		return ctx.Err()
	}
}

// publisher returns the publishing channel, opening one in confirm mode
// when there is none.
func (c *connection) publisher(ctx context.Context) (*pubChannel, error) {
	if c.pub != nil && !c.pub.isDead() {
		return c.pub, nil
	}
	c.pub = nil
	var pc *pubChannel
	err := c.do(ctx, func() error {
		ch, err := c.amqp.Channel()
		if err != nil {
			return err
		}
		pc = newPubChannel(ch)
		if err := ch.Confirm(false); err != nil {
			return err
		}
		return nil
	})
	if pc != nil {
		c.bg.Add(1)
		go pc.loop(&c.bg)
	}
	if err != nil {
		if pc != nil {
			c.retire(pc)
		}
		return nil, err
	}
	c.pub = pc
	return pc, nil
}

// retire drops the publishing channel after a Write left some of its
// messages unconfirmed: their confirms, returns or nacks may still come,
// and must not be taken for those of the next Write. The channel is closed
// in the background (on a blocked or hung connection that waits until the
// connection dies).
func (c *connection) retire(pc *pubChannel) {
	if c.pub == pc {
		c.pub = nil
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		_ = pc.ch.Close()
	}()
}

// exchangeExists asks the broker whether exchange exists (a passive
// declare, on a channel of its own: a missing exchange closes the channel
// it was asked on). It returns (false, nil) for a missing exchange and an
// error when the question could not be answered.
func (c *connection) exchangeExists(ctx context.Context, exchange string) (bool, error) {
	exists := false
	err := c.do(ctx, func() error {
		ch, err := c.amqp.Channel()
		if err != nil {
			return err
		}
		err = ch.ExchangeDeclarePassive(exchange, amqp.ExchangeDirect, false, false, false, false, nil)
		var aerr *amqp.Error
		switch {
		case err == nil:
			exists = true
			return ch.Close()
		case errors.As(err, &aerr) && aerr.Code == amqp.NotFound:
			return nil // the broker closed the channel
		default:
			return err
		}
	})
	return exists, err
}
