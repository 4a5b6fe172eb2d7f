package amqp1

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/sluiceio/sluice/sink"
)

// Write sends msgs, pipelined (up to MaxInFlight unsettled at once), and
// waits for the broker's outcome of each. It returns nil only when every
// message got an Accepted outcome; see the package documentation for the
// error classes. The whole call is bounded by WriteTimeout, ctx and Close.
func (w *Writer) Write(ctx context.Context, msgs []sink.Message) error {
	if w.closed.Load() {
		return sink.WithReason(ReasonClosed, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return sink.WithReason(classify(err).reason, fmt.Errorf("amqp1: %w", err))
	}
	select {
	case w.sem <- struct{}{}:
	case <-ctx.Done():
		return sink.WithReason(classify(ctx.Err()).reason, fmt.Errorf("amqp1: waiting for another Write: %w", ctx.Err()))
	case <-w.closing.Done():
		return sink.WithReason(ReasonClosed, ErrClosed)
	}
	defer func() { <-w.sem }()
	if w.closed.Load() {
		return sink.WithReason(ReasonClosed, ErrClosed)
	}
	if len(msgs) == 0 {
		return nil
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, w.cfg.WriteTimeout)
	defer cancel()
	defer context.AfterFunc(w.closing, cancel)()

	op := &writeOp{
		w:       w,
		caller:  ctx,
		msgs:    msgs,
		errs:    make([]error, len(msgs)),
		addr:    make([]string, len(msgs)),
		pending: make([]bool, len(msgs)),
		now:     w.cfg.Now(),
	}
	op.run(wctx)
	return op.finish(time.Since(start))
}

// writeOp is the state of one Write.
type writeOp struct {
	w       *Writer
	caller  context.Context // Write's own ctx, to tell its end from WriteTimeout
	msgs    []sink.Message
	errs    []error  // outcome per message: nil = Accepted
	addr    []string // target address per message
	pending []bool   // not resolved yet
	now     time.Time

	window   []inflight
	verdicts map[string]error // per address: attach refused, the error for all its messages
	blocked  map[string]error // per address: a transient failure; later messages are not sent
	probed   map[string]bool  // per address: its first message was sent alone
	sentTo   map[string]bool  // per address: a message of this Write went out
	sent     bool

	connFailed error // the connection is unusable: reset it when the Write ends
	reached    bool  // the broker answered something
	down, auth bool
	cause      error // first failure, for the state log
}

// inflight is a message sent and not settled yet.
type inflight struct {
	i int
	r amqp.SendReceipt
	l *link
}

func (op *writeOp) run(ctx context.Context) {
	w := op.w
	left := false
	for i := range op.msgs {
		m := &op.msgs[i]
		m.Delivered, m.DeliveredPart, m.DeliveredOffset = false, 0, 0
		if err := check(m); err != nil {
			op.errs[i] = sink.Permanent(sink.WithReason(ReasonBadHeader, err))
			continue
		}
		a := w.cfg.addr.Render(m.Topic, m.Key)
		if a == "" {
			op.errs[i] = sink.Permanent(sink.WithReason(ReasonInvalidAddress,
				fmt.Errorf("amqp1: address template %q gives an empty address for topic %q", w.cfg.Address, m.Topic)))
			continue
		}
		op.addr[i], op.pending[i] = a, true
		left = true
	}
	if !left {
		return
	}
	c, err := w.connect(ctx)
	if err != nil {
		op.failPending(op.contextError(ctx, err))
		return
	}
	enc := w.enc
	defer enc.release()
	for i := range op.msgs {
		if !op.pending[i] {
			continue
		}
		if op.connFailed != nil || ctx.Err() != nil {
			break
		}
		a := op.addr[i]
		if err := op.verdicts[a]; err != nil {
			op.resolve(i, err)
			continue
		}
		if err := op.blocked[a]; err != nil {
			op.resolve(i, sink.WithReason(ReasonNotSent, fmt.Errorf(
				"amqp1: address %s: not sent, an earlier message to it failed (%v)", a, err)))
			continue
		}
		l, err := w.sender(ctx, c, a)
		if err != nil {
			op.attachFailed(ctx, i, a, err)
			continue
		}
		r, err := l.snd.SendWithReceipt(ctx, enc.encode(&op.msgs[i]), nil)
		if err != nil && ctx.Err() == nil && !op.sentTo[a] && classify(err).scope == scopeLink {
			// The link died while idle (the broker detached it between
			// Writes): nothing of this Write is in flight on it, so a new
			// link cannot reorder anything. Attach again, once.
			w.dropLink(c, l)
			if l, err = w.sender(ctx, c, a); err != nil {
				op.attachFailed(ctx, i, a, err)
				continue
			}
			r, err = l.snd.SendWithReceipt(ctx, enc.encode(&op.msgs[i]), nil)
		}
		if err != nil {
			op.sendFailed(ctx, c, i, l, err)
			continue
		}
		if op.sentTo == nil {
			op.sentTo = make(map[string]bool)
		}
		op.sentTo[a] = true
		op.sent = true
		op.window = append(op.window, inflight{i: i, r: r, l: l})
		if w.probing[a] && !op.probed[a] {
			// The address failed last time: its first message goes
			// alone, so that a broker that refuses it and would accept
			// the next ones cannot make the retry overtake them.
			if op.probed == nil {
				op.probed = make(map[string]bool)
			}
			op.probed[a] = true
			for _, f := range op.window {
				op.settle(ctx, c, f)
			}
			op.window = op.window[:0]
			if op.errs[i] == nil && !op.pending[i] {
				delete(w.probing, a)
			}
			continue
		}
		if len(op.window) >= w.cfg.MaxInFlight {
			op.settle(ctx, c, op.window[0])
			op.window = op.window[1:]
		}
	}
	for _, f := range op.window {
		op.settle(ctx, c, f)
	}
	op.window = nil
	if op.connFailed == nil && ctx.Err() != nil {
		op.failPending(op.contextError(ctx, ctx.Err()))
	} else if op.connFailed != nil {
		op.failPending(sink.WithReason(classify(op.connFailed).reason,
			fmt.Errorf("amqp1: not sent, the connection failed: %w", op.connFailed)))
	}
}

// resolve records the outcome of message i.
func (op *writeOp) resolve(i int, err error) {
	op.errs[i] = err
	op.pending[i] = false
}

// failPending fails every message without an outcome yet.
func (op *writeOp) failPending(err error) {
	op.note(err)
	for i, p := range op.pending {
		if p {
			op.resolve(i, err)
		}
	}
}

// note folds one failure into the Write's state (err carries its reason).
func (op *writeOp) note(err error) {
	if op.cause == nil {
		op.cause = err
	}
	switch sink.Reason(err) {
	case ReasonNetwork, ReasonTimeout, ReasonTLS:
		op.down = true
	case ReasonAuth:
		op.auth = true
	}
}

// fail records a transient failure of message i, and holds back the later
// messages to its address (sending them would reorder the address).
func (op *writeOp) fail(i int, reason string, err error) {
	e := sink.WithReason(reason, err)
	op.note(e)
	op.resolve(i, e)
	if op.blocked == nil {
		op.blocked = make(map[string]error)
	}
	if op.blocked[op.addr[i]] == nil {
		op.blocked[op.addr[i]] = e
	}
	probing := op.w.probing
	if len(probing) >= maxUnknown {
		clear(probing)
	}
	probing[op.addr[i]] = true
}

// contextError turns the error of a call whose context ended into the
// context's error: ErrClosed when Close aborted it, the caller's error
// when the caller's ctx ended, or a timeout naming WriteTimeout.
func (op *writeOp) contextError(ctx context.Context, err error) error {
	switch {
	case op.w.closed.Load():
		return sink.WithReason(ReasonClosed, ErrClosed)
	case op.caller.Err() != nil:
		return sink.WithReason(classify(op.caller.Err()).reason, fmt.Errorf("amqp1: %w", op.caller.Err()))
	case ctx.Err() != nil:
		return sink.WithReason(ReasonTimeout, fmt.Errorf("amqp1: no outcome within the write timeout %s: %w", op.w.cfg.WriteTimeout, ctx.Err()))
	}
	return sink.WithReason(classify(err).reason, err)
}

// attachFailed handles a link that could not be attached for message i.
func (op *writeOp) attachFailed(ctx context.Context, i int, a string, err error) {
	if ctx.Err() != nil {
		op.fail(i, sink.Reason(op.contextError(ctx, err)), op.contextError(ctx, err))
		op.markConnOnTimeout(ctx)
		return
	}
	c := classify(err)
	op.reached = op.reached || c.reached
	err = fmt.Errorf("amqp1: attach to address %s: %w", a, tidy(err))
	var verdict error
	switch {
	case c.reason == ReasonUnknownAddress:
		verdict = op.unknownAddress(a, err)
	case c.scope == scopeConn:
		op.connFailed = err
		op.fail(i, c.reason, err)
		return
	default:
		verdict = sink.WithReason(c.reason, err)
	}
	if op.verdicts == nil {
		op.verdicts = make(map[string]error)
	}
	op.verdicts[a] = verdict
	op.note(verdict)
	op.resolve(i, verdict)
}

// unknownAddress is the error of a message to an address the broker says
// does not exist: transient for UnknownAddressGrace, then Permanent.
func (op *writeOp) unknownAddress(a string, err error) error {
	w := op.w
	first := w.unknown.seen(a, op.now)
	unknownFor := op.now.Sub(first)
	if grace := w.cfg.UnknownAddressGrace; unknownFor < grace {
		return sink.WithReason(ReasonUnknownAddress, fmt.Errorf(
			"%w (address unknown for %s, permanent after %s)", err, unknownFor.Round(time.Millisecond), grace))
	}
	if w.unknown.markPermanent(a) {
		w.log.Warn("amqp1 address does not exist; its messages now fail permanently",
			slog.String("address", a), slog.Duration("unknown_for", unknownFor))
	}
	return sink.Permanent(sink.WithReason(ReasonUnknownAddress, fmt.Errorf(
		"%w (address unknown for %s)", err, unknownFor.Round(time.Millisecond))))
}

// sendFailed handles a SendWithReceipt error for message i.
func (op *writeOp) sendFailed(ctx context.Context, c *connection, i int, l *link, err error) {
	if ctx.Err() != nil {
		e := op.contextError(ctx, err)
		op.fail(i, sink.Reason(e), e)
		op.markConnOnTimeout(ctx)
		return
	}
	cl := classify(err)
	err = fmt.Errorf("amqp1: send to address %s: %w", l.addr, tidy(err))
	if cl.permanent {
		e := sink.Permanent(sink.WithReason(cl.reason, err))
		op.note(e)
		op.resolve(i, e)
		return
	}
	switch cl.scope {
	case scopeLink:
		op.w.dropLink(c, l)
	case scopeConn:
		op.connFailed = err
	}
	if cl.reason == ReasonSettleMode {
		op.settleModeHint(err)
	}
	op.fail(i, cl.reason, err)
}

// settle waits for the outcome of one message.
func (op *writeOp) settle(ctx context.Context, c *connection, f inflight) {
	i, a := f.i, f.l.addr
	state, err := f.r.Wait(ctx)
	if err != nil {
		if ctx.Err() != nil {
			e := op.contextError(ctx, err)
			op.fail(i, sink.Reason(e), fmt.Errorf("amqp1: address %s: outcome unknown: %w", a, e))
			op.markConnOnTimeout(ctx)
			return
		}
		cl := classify(err)
		switch cl.scope {
		case scopeLink:
			op.w.dropLink(c, f.l)
		case scopeConn:
			if op.connFailed == nil {
				op.connFailed = err
			}
		}
		op.fail(i, cl.reason, fmt.Errorf("amqp1: address %s: outcome unknown: %w", a, tidy(err)))
		return
	}
	op.reached = true
	switch s := state.(type) {
	case *amqp.StateAccepted:
		op.resolve(i, nil)
	case *amqp.StateRejected:
		cl := classifyRejected(s.Error)
		err := fmt.Errorf("amqp1: address %s: rejected by the broker: %s", a, describe(s.Error))
		switch {
		case cl.reason == ReasonUnknownAddress:
			e := op.unknownAddress(a, err)
			if sink.IsPermanent(e) {
				op.note(e)
				op.resolve(i, e)
			} else {
				op.fail(i, ReasonUnknownAddress, e)
			}
		case cl.permanent:
			e := sink.Permanent(sink.WithReason(cl.reason, err))
			op.note(e)
			op.resolve(i, e)
		default:
			op.fail(i, cl.reason, err)
		}
	case *amqp.StateReleased:
		op.fail(i, ReasonReleased, fmt.Errorf("amqp1: address %s: released by the broker (not processed)", a))
	case *amqp.StateModified:
		if s.UndeliverableHere {
			e := sink.Permanent(sink.WithReason(ReasonUndeliverable, fmt.Errorf(
				"amqp1: address %s: modified by the broker with undeliverable-here (delivery-failed %t)", a, s.DeliveryFailed)))
			op.note(e)
			op.resolve(i, e)
			return
		}
		op.fail(i, ReasonModified, fmt.Errorf("amqp1: address %s: modified by the broker (delivery-failed %t)", a, s.DeliveryFailed))
	default:
		op.fail(i, ReasonUnknownOutcome, fmt.Errorf("amqp1: address %s: settled without an outcome (%T)", a, state))
	}
}

// markConnOnTimeout resets the connection after WriteTimeout ran out: a
// broker that does not answer in time may hold a half-dead connection.
func (op *writeOp) markConnOnTimeout(ctx context.Context) {
	if op.connFailed == nil && op.caller.Err() == nil && !op.w.closed.Load() && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		op.connFailed = fmt.Errorf("amqp1: no answer within the write timeout %s", op.w.cfg.WriteTimeout)
	}
}

func (op *writeOp) settleModeHint(err error) {
	w := op.w
	if !w.settleLog {
		w.settleLog = true
		w.log.Error("amqp1 broker only offers pre-settled links (no outcome per message); sluice does not send without acknowledgements and retries",
			slog.Any("error", err))
	}
}

// describe writes an AMQP error as "condition: description".
func describe(e *amqp.Error) string {
	if e == nil {
		return "no error condition given"
	}
	if e.Description == "" {
		return string(e.Condition)
	}
	return string(e.Condition) + ": " + e.Description
}

// finish updates the Writer's state and metrics and builds Write's result.
func (op *writeOp) finish(took time.Duration) error {
	w := op.w
	res := writeResult{Sent: op.sent, N: len(op.msgs), Took: took}
	delivered, permanent := 0, 0
	var first error
	for i, err := range op.errs {
		if err == nil {
			delivered++
			res.DeliveredBytes += len(op.msgs[i].Key) + len(op.msgs[i].Value)
			w.unknown.known(op.addr[i])
			if op.blocked[op.addr[i]] == nil {
				delete(w.probing, op.addr[i])
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
	res.Delivered = delivered
	if op.connFailed != nil && !w.closed.Load() {
		w.dropConn(op.connFailed)
	}
	w.health.Update(op.reached || delivered > 0, op.down, op.auth, op.cause)
	w.metrics.Observe(&res)
	switch {
	case first == nil:
		return nil
	case delivered == 0 && permanent == 0:
		return first
	default:
		return &sink.BatchError{Errs: op.errs}
	}
}
