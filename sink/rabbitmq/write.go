package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluiceio/sluice/sink"
)

// maxKnownExchanges bounds the cache of exchanges known to exist (an
// exchange template with {key} can name many).
const maxKnownExchanges = 4096

// Write publishes msgs (mandatory, persistent, on a channel in confirm
// mode) and waits until the broker confirmed every one, in one attempt,
// and reports the outcome per the sink contract (see the package
// documentation for the error classes). The whole call is bounded by
// WriteTimeout.
func (w *Writer) Write(ctx context.Context, msgs []sink.Message) error {
	if w.closed.Load() {
		return sink.WithReason(ReasonClosed, ErrClosed)
	}
	if len(msgs) == 0 {
		return nil
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, w.cfg.WriteTimeout)
	defer cancel()
	defer context.AfterFunc(w.closing, cancel)()

	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	op := &writeOp{
		w:       w,
		msgs:    msgs,
		errs:    make([]error, len(msgs)),
		exch:    make([]string, len(msgs)),
		keys:    make([]string, len(msgs)),
		pending: make([]bool, len(msgs)),
		now:     w.cfg.Now(),
	}
	op.run(ctx)
	return op.finish(time.Since(start))
}

// writeOp is the state of one Write.
type writeOp struct {
	w    *Writer
	msgs []sink.Message
	errs []error // outcome per message: nil and delivered, or the failure
	now  time.Time

	exch, keys []string // destination per message
	pending    []bool   // still to be sent
	sent       bool     // something was published

	// ambiguous: the broker refused a message as too large without saying
	// which: the whole Write fails Permanent so the forwarder splits.
	ambiguous error

	reached, down, auth bool
	cause               error // first failure, for the state log
}

func (op *writeOp) run(ctx context.Context) {
	w := op.w
	if !op.prepare() {
		return
	}
	if err := ctx.Err(); err != nil {
		op.failPending(w.contextError(ctx, err))
		return
	}
	c, fresh, err := w.connection(ctx)
	if err != nil {
		op.failPending(w.contextError(ctx, err))
		return
	}
	op.reached = fresh // the broker answered the handshake
	if blocked, reason, _ := c.blockedState(); blocked {
		op.failPending(fmt.Errorf("%w: %s", errBlocked, reason))
		return
	}
	if !op.checkExchanges(ctx, c) {
		return
	}
	pc, err := c.publisher(ctx)
	if err != nil {
		op.failPending(w.contextError(ctx, fmt.Errorf("rabbitmq: open channel: %w", err)))
		return
	}
	op.publish(ctx, c, pc)
}

// prepare renders every destination and rejects what AMQP cannot carry.
// It reports whether anything is left to send.
func (op *writeOp) prepare() bool {
	cfg := &op.w.cfg
	left := false
	for i := range op.msgs {
		m := &op.msgs[i]
		m.Delivered, m.DeliveredPart, m.DeliveredOffset = false, 0, 0
		op.exch[i] = cfg.exchange.Render(m.Topic, m.Key)
		op.keys[i] = cfg.routingKey.Render(m.Topic, m.Key)
		switch {
		case len(op.exch[i]) > maxShortstr:
			op.errs[i] = sink.Permanent(sink.WithReason(ReasonInvalidDestination,
				fmt.Errorf("rabbitmq: exchange name of %d bytes is longer than %d (%.40q...)", len(op.exch[i]), maxShortstr, op.exch[i])))
		case len(op.keys[i]) > maxShortstr:
			op.errs[i] = sink.Permanent(sink.WithReason(ReasonInvalidDestination,
				fmt.Errorf("rabbitmq: routing key of %d bytes is longer than %d (%.40q...)", len(op.keys[i]), maxShortstr, op.keys[i])))
		default:
			if err := checkHeaders(m); err != nil {
				op.errs[i] = sink.Permanent(sink.WithReason(ReasonInvalidHeader, err))
				continue
			}
			op.pending[i] = true
			left = true
		}
	}
	return left
}

// failPending fails every message still to be sent with err (transient).
func (op *writeOp) failPending(err error) {
	c := classify(err)
	op.note(err, c)
	e := sink.WithReason(c.reason, err)
	for i, p := range op.pending {
		if p {
			op.errs[i], op.pending[i] = e, false
		}
	}
}

// note folds one failure's class into the Write's state.
func (op *writeOp) note(err error, c class) {
	if op.cause == nil {
		op.cause = sink.WithReason(c.reason, err)
	}
	op.reached = op.reached || c.reached
	op.down = op.down || c.down
	op.auth = op.auth || c.reason == ReasonAuth
}

// checkExchanges makes sure every named exchange exists before publishing
// to it: a publish to a missing exchange makes the broker close the
// channel (404), taking the batch-mates' confirms with it. Exchanges found
// are remembered until a publish meets a 404. Messages for a missing
// exchange fail with reason no_exchange (within the grace: transient). It
// reports whether anything is left to send.
func (op *writeOp) checkExchanges(ctx context.Context, c *connection) bool {
	w := op.w
	if s, ok := w.cfg.exchange.Static(); ok && s == "" {
		return true // the default exchange always exists
	}
	checked := make(map[string]bool)
	left := false
	for i, p := range op.pending {
		ex := op.exch[i]
		if !p || ex == "" || w.exchanges[ex] {
			left = left || p
			continue
		}
		if checked[ex] {
			continue
		}
		checked[ex] = true
		exists, err := c.exchangeExists(ctx, ex)
		var e error
		switch {
		case err != nil:
			err = w.contextError(ctx, fmt.Errorf("rabbitmq: exchange %q: %w", ex, err))
			if c.isDead() || ctx.Err() != nil {
				op.failPending(err)
				return false
			}
			cl := classify(err)
			op.note(err, cl)
			e = sink.WithReason(cl.reason, err)
		case exists:
			op.reached = true
			if len(w.exchanges) >= maxKnownExchanges {
				clear(w.exchanges)
			}
			w.exchanges[ex] = true
			left = true
			continue
		default:
			e = op.unroutable(exchangeKey(ex), ReasonNoExchange,
				fmt.Errorf("rabbitmq: exchange %q does not exist", ex))
		}
		for j := i; j < len(op.pending); j++ {
			if op.pending[j] && op.exch[j] == ex {
				op.errs[j], op.pending[j] = e, false
			}
		}
	}
	return left
}

// unroutable is the error of a message the broker cannot route to dest
// (a route or an exchange): transient for UnroutableGrace, then
// permanent.
func (op *writeOp) unroutable(dest, reason string, err error) error {
	w := op.w
	op.reached = true
	grace := w.cfg.UnroutableGrace
	first := w.grace.seen(dest, op.now)
	unroutableFor := op.now.Sub(first)
	if unroutableFor < grace {
		op.note(err, class{reason: reason, reached: true})
		return sink.WithReason(reason, fmt.Errorf("%w (for %s; dead-lettered after %s)",
			err, unroutableFor.Round(time.Millisecond), grace))
	}
	if w.grace.markPermanent(dest) {
		w.log.Warn("rabbitmq destination unroutable past the grace; its messages are now dead-lettered",
			slog.String("reason", reason), slog.Any("error", err), slog.Duration("unroutable_for", unroutableFor))
	}
	return sink.Permanent(sink.WithReason(reason, fmt.Errorf("%w (for %s)", err, unroutableFor.Round(time.Millisecond))))
}

// publish sends the pending messages on pc and waits for their confirms,
// for the channel or the connection to end, for the broker to block the
// connection, or for ctx, whichever comes first.
func (op *writeOp) publish(ctx context.Context, c *connection, pc *pubChannel) {
	w := op.w
	op.sent = true
	_, _, blockedCh := c.blockedState()
	po := pc.begin()

	// A publish can block in a socket write when the broker stopped
	// reading (alarm, hang): then only closing the socket frees it.
	var (
		pubMu     sync.Mutex
		inPublish = true
	)
	stop := context.AfterFunc(ctx, func() {
		pubMu.Lock()
		defer pubMu.Unlock()
		if inPublish {
			c.kill()
		}
	})
	var pubErr error
loop:
	for i := range op.msgs {
		if !op.pending[i] {
			continue
		}
		select {
		case <-ctx.Done():
			break loop
		case <-blockedCh:
			break loop
		case <-pc.dead:
			break loop
		case <-c.dead:
			break loop
		default:
		}
		p := publishing(&op.msgs[i])
		pc.add(po, published{idx: i, id: p.MessageId, exchange: op.exch[i], key: op.keys[i]})
		if err := pc.ch.Publish(op.exch[i], op.keys[i], true, false, p); err != nil {
			pc.unadd(po)
			pubErr = err
			break
		}
		pc.next++
	}
	pubMu.Lock()
	inPublish = false
	pubMu.Unlock()
	stop()
	pc.finish(po)

	select {
	case <-po.done:
	case <-pc.dead:
	case <-c.dead:
	case <-blockedCh:
	case <-ctx.Done():
	}
	pubs, all := pc.end(po)
	if !all && !c.isDead() {
		c.retire(pc)
	}

	// Why the unconfirmed ones (and those not sent) were not confirmed.
	var cause error
	var aerr *amqp.Error
	blocked := false
	select {
	case <-blockedCh: // stays closed even if the broker unblocked since
		blocked = true
	default:
	}
	_, blockedBy, _ := c.blockedState()
	switch {
	case pc.isDead() && errors.As(pc.deadErr, &aerr) && aerr.Server:
		cause = pc.deadErr // the broker closed the channel or the connection: its reason
	case ctx.Err() != nil:
		cause = w.contextError(ctx, ctx.Err())
	case pc.isDead():
		cause = pc.deadErr
	case c.isDead():
		cause = c.deadErr
	case blocked:
		cause = fmt.Errorf("%w: %s", errBlocked, blockedBy)
	case pubErr != nil:
		cause = pubErr
	default:
		cause = errConnLost
	}
	op.settle(pubs, cause)
}

// settle sets the outcome of every pending message from what the broker
// said about its publish, or from cause when it said nothing.
func (op *writeOp) settle(pubs []published, cause error) {
	w := op.w
	at := make([]int32, len(op.msgs))
	for i := range at {
		at[i] = -1
	}
	for j := range pubs {
		if pubs[j].resolved {
			at[pubs[j].idx] = int32(j)
			op.reached = true
		}
	}

	cc := classify(cause)
	var aerr *amqp.Error
	errors.As(cause, &aerr)
	if cc.reason == ReasonNoExchange {
		clear(w.exchanges) // one was deleted: check them again
	}
	tooLarge := cc.reason == ReasonTooLarge
	limit, limitKnown := maxMessageSize(aerr)
	var unknownSize []int // unconfirmed messages when the limit is not known

	for i, p := range op.pending {
		if !p {
			continue
		}
		op.pending[i] = false
		if j := at[i]; j >= 0 {
			op.errs[i] = op.outcome(&pubs[j])
			continue
		}
		switch {
		case tooLarge && limitKnown && len(op.msgs[i].Value) > limit:
			op.note(cause, cc)
			op.errs[i] = sink.Permanent(sink.WithReason(ReasonTooLarge, fmt.Errorf(
				"rabbitmq: message body of %d bytes is larger than the broker's max_message_size %d: %w",
				len(op.msgs[i].Value), limit, cause)))
		case tooLarge && limitKnown:
			op.note(cause, class{reason: ReasonChannel, reached: true})
			op.errs[i] = sink.WithReason(ReasonChannel, fmt.Errorf(
				"rabbitmq: not confirmed: the broker closed the channel for another message: %w", cause))
		case tooLarge:
			unknownSize = append(unknownSize, i)
			op.errs[i] = sink.WithReason(ReasonTooLarge, fmt.Errorf("rabbitmq: not confirmed: %w", cause))
		default:
			op.note(cause, cc)
			op.errs[i] = sink.WithReason(cc.reason, fmt.Errorf("rabbitmq: not confirmed: %w", cause))
		}
	}
	switch {
	case len(unknownSize) == 1:
		i := unknownSize[0]
		op.errs[i] = sink.Permanent(op.errs[i])
	case len(unknownSize) > 1:
		op.ambiguous = sink.WithReason(ReasonTooLarge, cause)
	}
}

// outcome is the result of a publish the broker confirmed or nacked.
func (op *writeOp) outcome(p *published) error {
	switch {
	case !p.acked:
		err := fmt.Errorf("rabbitmq: the broker nacked the message (basic.nack: a queue refused it, e.g. full with x-overflow=reject-publish, or failed to store it)")
		op.note(err, class{reason: ReasonNacked, reached: true})
		return sink.WithReason(ReasonNacked, err)
	case p.returned && p.retCode == amqp.NoRoute:
		return op.unroutable(routeKey(p.exchange, p.key), ReasonUnroutable, fmt.Errorf(
			"rabbitmq: no queue bound for exchange %q routing key %q (basic.return %d %s)", p.exchange, p.key, p.retCode, p.retText))
	case p.returned:
		err := fmt.Errorf("rabbitmq: message returned by the broker for exchange %q routing key %q (basic.return %d %s)",
			p.exchange, p.key, p.retCode, p.retText)
		op.note(err, class{reason: ReasonReturned, reached: true})
		return sink.WithReason(ReasonReturned, err)
	}
	return nil
}

// finish updates the Writer's state and metrics and builds Write's result.
func (op *writeOp) finish(took time.Duration) error {
	w := op.w
	res := writeResult{Sent: op.sent, N: len(op.msgs), Took: took}
	permanent := 0
	var first error
	var routed map[string]bool
	for i, err := range op.errs {
		if err == nil {
			res.Delivered++
			res.DeliveredBytes += len(op.msgs[i].Value)
			if !w.grace.empty() {
				if routed == nil {
					routed = make(map[string]bool)
				}
				routed[routeKey(op.exch[i], op.keys[i])] = true
				routed[exchangeKey(op.exch[i])] = true
			}
			continue
		}
		if first == nil {
			first = err
		}
		if res.Failed == nil {
			res.Failed = make(map[string]int)
		}
		res.Failed[sink.Reason(err)]++
		if sink.IsPermanent(err) {
			permanent++
		}
	}
	w.grace.routed(routed)
	w.health.Update(op.reached || res.Delivered > 0, op.down, op.auth, op.cause)
	w.metrics.Observe(&res)

	switch {
	case op.ambiguous != nil:
		return sink.Permanent(op.ambiguous)
	case first == nil:
		return nil
	case res.Delivered == 0 && permanent == 0:
		return first
	default:
		return &sink.BatchError{Errs: op.errs}
	}
}
