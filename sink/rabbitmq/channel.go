package rabbitmq

import (
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Listener buffers. The loop drains them continuously; the buffers only
// absorb scheduling delays (amqp091-go's reader goroutine gives up on a
// notification after 5 s — for a return, that would turn an unroutable
// message into a success).
const (
	confirmBuffer = 256
	returnBuffer  = 256
)

// pubChannel is a channel in confirm mode and the goroutine that matches
// the broker's confirms and returns with the publishes of the Write that
// owns it.
//
// Publishes, confirms and returns are matched by order, which is what
// AMQP guarantees on one channel: delivery tags count publishes from 1;
// a mandatory message that cannot be routed comes back (basic.return)
// before its basic.ack, and returns come in publish order. amqp091-go
// delivers each on its own Go channel, from one reader goroutine, in the
// order the frames arrived: a return is in the returns buffer before its
// confirm is in the confirms buffer. So the loop, on each confirm, first
// takes every return already buffered.
type pubChannel struct {
	ch       *amqp.Channel
	confirms chan amqp.Confirmation
	returns  chan amqp.Return
	closes   chan *amqp.Error

	dead    chan struct{} // closed when the channel is closed
	deadErr error         // valid once dead is closed

	next uint64 // delivery tag of the next publish; only the owning Write uses it

	mu sync.Mutex
	op *publishOp // the Write's publishes; nil between Writes
}

// publishOp is what one Write published on the channel.
type publishOp struct {
	first     uint64 // delivery tag of pubs[0]
	pubs      []published
	retCursor int // returns match publishes at or after this index
	pending   int // published, not yet confirmed
	finished  bool
	done      chan struct{} // closed when finished and nothing is pending
}

// published is one publish and what the broker said about it.
type published struct {
	idx               int // the message's index in the Write
	id, exchange, key string
	resolved, acked   bool
	returned          bool
	retCode           uint16
	retText           string
}

func newPubChannel(ch *amqp.Channel) *pubChannel {
	pc := &pubChannel{
		ch:   ch,
		dead: make(chan struct{}),
		next: 1,
	}
	pc.closes = ch.NotifyClose(make(chan *amqp.Error, 1))
	pc.returns = ch.NotifyReturn(make(chan amqp.Return, returnBuffer))
	pc.confirms = ch.NotifyPublish(make(chan amqp.Confirmation, confirmBuffer))
	return pc
}

// loop runs until the channel closes (amqp091-go then closes the confirms
// listener).
func (pc *pubChannel) loop(wg *sync.WaitGroup) {
	defer wg.Done()
	returns := pc.returns
	for {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			pc.onReturn(r)
		case c, ok := <-pc.confirms:
			if !ok {
				var err error = errConnLost
				// amqp091-go sends the close reason before it closes the
				// listeners.
				select {
				case e, ok := <-pc.closes:
					if ok && e != nil {
						err = e
					}
				default:
				}
				pc.deadErr = err
				close(pc.dead)
				return
			}
		drain:
			for returns != nil {
				select {
				case r, ok := <-returns:
					if !ok {
						returns = nil
						break drain
					}
					pc.onReturn(r)
				default:
					break drain
				}
			}
			pc.onConfirm(c)
		}
	}
}

func (pc *pubChannel) isDead() bool {
	select {
	case <-pc.dead:
		return true
	default:
		return false
	}
}

func (pc *pubChannel) onConfirm(c amqp.Confirmation) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	op := pc.op
	if op == nil || c.DeliveryTag < op.first || c.DeliveryTag-op.first >= uint64(len(op.pubs)) {
		return // not this Write's
	}
	p := &op.pubs[c.DeliveryTag-op.first]
	if p.resolved {
		return
	}
	p.resolved, p.acked = true, c.Ack
	op.pending--
	if op.finished && op.pending == 0 {
		close(op.done)
	}
}

// onReturn marks the first publish not yet returned, at or after the last
// returned one, with the same message id, exchange and routing key.
func (pc *pubChannel) onReturn(r amqp.Return) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	op := pc.op
	if op == nil {
		return
	}
	for i := op.retCursor; i < len(op.pubs); i++ {
		p := &op.pubs[i]
		if !p.returned && !p.resolved && p.id == r.MessageId && p.exchange == r.Exchange && p.key == r.RoutingKey {
			p.returned, p.retCode, p.retText = true, r.ReplyCode, r.ReplyText
			op.retCursor = i + 1
			return
		}
	}
}

// begin starts the publishes of a Write.
func (pc *pubChannel) begin() *publishOp {
	op := &publishOp{first: pc.next, done: make(chan struct{})}
	pc.mu.Lock()
	pc.op = op
	pc.mu.Unlock()
	return op
}

// add registers a publish before it is sent (its confirm may come back
// before Publish returns).
func (pc *pubChannel) add(op *publishOp, p published) {
	pc.mu.Lock()
	op.pubs = append(op.pubs, p)
	op.pending++
	pc.mu.Unlock()
}

// unadd drops the last publish: Publish failed, nothing was sent.
func (pc *pubChannel) unadd(op *publishOp) {
	pc.mu.Lock()
	op.pubs = op.pubs[:len(op.pubs)-1]
	op.pending--
	pc.mu.Unlock()
}

// finish says no more publishes will come.
func (pc *pubChannel) finish(op *publishOp) {
	pc.mu.Lock()
	op.finished = true
	if op.pending == 0 {
		close(op.done)
	}
	pc.mu.Unlock()
}

// end detaches op from the channel and returns a snapshot of its
// publishes, and whether every one was confirmed.
func (pc *pubChannel) end(op *publishOp) ([]published, bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.op = nil
	return op.pubs, op.pending == 0
}
