package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluiceio/sluice/sink"
)

// pubOpts are the options of every publish: no client-side retries after
// "no responders" (the forwarder retries, and NoStreamGrace decides).
var pubOpts = []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)}

// Write publishes msgs with JetStream and waits for their PubAcks; see the
// package documentation for the error classes. It returns when every
// message has its outcome, or ctx ends, or Close is called.
func (w *Writer) Write(ctx context.Context, msgs []sink.Message) error {
	if w.closed.Load() {
		return sink.WithReason(ReasonClosed, ErrClosed)
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return sink.WithReason(classify(err).reason, prefixed(err))
	}
	start := time.Now()
	cs, err := w.conn(ctx)
	if err != nil {
		err = w.abortError(ctx, err)
		c := classify(err)
		w.metrics.Observe(&writeResult{N: len(msgs), Failed: map[string]int{c.reason: len(msgs)}})
		return sink.WithReason(c.reason, prefixed(err))
	}

	op := w.newOp(cs, msgs)
	op.start = start
	if op.pending > 0 {
		w.mu.Lock()
		if w.closed.Load() {
			w.mu.Unlock()
			return sink.WithReason(ReasonClosed, ErrClosed)
		}
		w.ops.Add(1) // under w.mu: Close sets closed under it before it waits
		w.mu.Unlock()
		go op.publish()
		select {
		case <-op.done:
		case <-ctx.Done():
		case <-w.closing:
		}
		cut := true
		select {
		case <-op.done:
			cut = op.cut
		default:
			// The publisher goroutine stops at its next wait; it works on
			// copies of the messages, never on msgs.
			close(op.abort)
		}
		if cut {
			err := w.abortError(ctx, ErrClosed)
			c := classify(err)
			w.metrics.Observe(&writeResult{Sent: true, N: len(msgs), Took: time.Since(start), Failed: map[string]int{c.reason: len(msgs)}})
			return sink.WithReason(c.reason, prefixed(err))
		}
	}
	return op.finish(ctx)
}

// prefixed returns err with "nats: " in front unless it has it already.
func prefixed(err error) error {
	if strings.HasPrefix(err.Error(), "nats: ") {
		return err
	}
	return fmt.Errorf("nats: %w", err)
}

// abortError is the error of a Write cut short: ErrClosed after Close,
// ctx's error, or err.
func (w *Writer) abortError(ctx context.Context, err error) error {
	switch {
	case w.closed.Load():
		return ErrClosed
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return err
}

// writeOp is one Write. The publisher goroutine owns raw, acks, sent and
// cut until done is closed; the encoded messages are copies, so an
// aborted Write can return while the goroutine still runs.
type writeOp struct {
	w     *Writer
	cs    *connState
	msgs  []sink.Message
	start time.Time

	nm      []natsgo.Msg // encoded copies
	final   []error      // outcome decided before publishing (invalid subject, header)
	pending int          // messages to publish

	raw  []error // publish or PubAck error per message
	acks []*jetstream.PubAck
	futs []jetstream.PubAckFuture
	sc   *scratch // where the slices above live; reused unless the Write was cut short
	sent bool
	cut  bool // the publisher stopped before every outcome was in (abort, Close)

	abort chan struct{}
	done  chan struct{}
}

// newOp encodes msgs into copies the publisher goroutine may use after
// Write returned.
func (w *Writer) newOp(cs *connState, msgs []sink.Message) *writeOp {
	n := len(msgs)
	size := 0
	for i := range msgs {
		size += len(msgs[i].Value)
	}
	sc := w.getScratch(n, size)
	op := &writeOp{
		w: w, cs: cs, msgs: msgs, sc: sc,
		nm: sc.nm, final: sc.final, raw: sc.raw, acks: sc.acks, futs: sc.futs,
		abort: make(chan struct{}),
		done:  make(chan struct{}),
	}
	arena := sc.arena[:0]
	for i := range msgs {
		m := &msgs[i]
		subject := w.cfg.subject.Render(m.Topic, m.Key)
		if err := checkSubject(subject); err != nil {
			op.final[i] = sink.Permanent(sink.WithReason(ReasonInvalidSubject,
				fmt.Errorf("%w %q (topic %s): %v", ErrInvalidSubject, subject, m.Topic, err)))
			continue
		}
		h, err := encodeHeaders(m)
		if err != nil {
			op.final[i] = sink.Permanent(sink.WithReason(ReasonInvalidHeader, err))
			continue
		}
		at := len(arena)
		arena = append(arena, m.Value...)
		op.nm[i] = natsgo.Msg{Subject: subject, Header: h, Data: arena[at:len(arena):len(arena)]}
		op.pending++
	}
	return op
}

// publish runs in its own goroutine: it publishes the messages in order,
// at most MaxPending awaiting their PubAck at once, and waits for every
// outcome. After a failure that is not about the message (connection
// lost, closed), it publishes no further message: sending later ones
// could store them before the failed one is sent again.
func (op *writeOp) publish() {
	defer op.w.ops.Done()
	defer close(op.done)
	js := op.cs.js
	futs := op.futs
	window := make([]int, 0, min(op.pending, op.w.cfg.MaxPending))
	var stopped error
	for i := range op.nm {
		if op.final[i] != nil {
			continue
		}
		if stopped != nil {
			op.raw[i] = fmt.Errorf("not sent after an earlier failure: %w", stopped)
			continue
		}
		for len(window) >= op.w.cfg.MaxPending {
			if !op.await(window[0], futs[window[0]]) {
				op.cut = true
				return
			}
			window = window[1:]
		}
		f, err := js.PublishMsgAsync(&op.nm[i], pubOpts...)
		if err != nil {
			op.raw[i] = err
			if !classify(err).permanent {
				stopped = err
			}
			continue
		}
		op.sent = true
		futs[i] = f
		window = append(window, i)
	}
	for _, i := range window {
		if !op.await(i, futs[i]) {
			op.cut = true
			return
		}
	}
}

// await waits for message i's outcome. Every future resolves: PubAck,
// error, AckTimeout, or the connection dropping. It reports false when the
// Write was aborted.
func (op *writeOp) await(i int, f jetstream.PubAckFuture) bool {
	select {
	case ack := <-f.Ok():
		op.acks[i] = ack
	case err := <-f.Err():
		op.raw[i] = err
	case <-op.abort:
		return false
	case <-op.w.closing:
		return false
	}
	return true
}

// finish classifies every outcome, updates the state and metrics, and
// builds Write's result.
func (op *writeOp) finish(ctx context.Context) error {
	w := op.w
	res := writeResult{Sent: op.sent, N: len(op.msgs), Took: time.Since(op.start)}
	errs := op.final
	verdicts := make(map[string]error) // no-stream verdict per subject
	delivered, permanent, dups := 0, 0, 0
	var first error
	for i := range op.msgs {
		if errs[i] == nil {
			if op.acks[i] != nil {
				delivered++
				res.DeliveredBytes += len(op.msgs[i].Key) + len(op.msgs[i].Value)
				if op.acks[i].Duplicate {
					dups++
				}
				w.noStream.delivered(op.nm[i].Subject)
				continue
			}
			errs[i] = op.messageError(ctx, i, verdicts)
		}
		if first == nil {
			first = errs[i]
		}
		if res.Failed == nil {
			res.Failed = make(map[string]int)
		}
		res.Failed[sink.Reason(errs[i])]++
		if sink.IsPermanent(errs[i]) {
			permanent++
		}
	}
	res.Delivered = delivered
	if delivered > 0 {
		w.state.delivered()
	}
	w.metrics.Observe(&res)
	w.metrics.Add(metricDuplicates, dups)
	var result error
	switch {
	case first == nil:
	case delivered == 0 && permanent == 0:
		result = first
	default:
		result = &sink.BatchError{Errs: slices.Clone(errs)}
	}
	w.putScratch(op.sc)
	return result
}

// messageError turns the raw failure of message i into its sink error.
func (op *writeOp) messageError(ctx context.Context, i int, verdicts map[string]error) error {
	raw := op.raw[i]
	if raw == nil {
		raw = errors.New("no outcome") // cannot happen: every future resolves
	}
	subject := op.nm[i].Subject
	c := classify(raw)
	switch {
	case c.reason == ReasonNoStream:
		e, ok := verdicts[subject]
		if !ok {
			e = op.noStreamError(ctx, subject, raw)
			verdicts[subject] = e
		}
		return e
	case c.reason == ReasonTimeout:
		// A publish the server refused for permissions gets no PubAck.
		if perr := op.w.state.permissionSince(op.start); perr != nil {
			return sink.WithReason(ReasonAuth, fmt.Errorf("nats: publish to %s: no PubAck within %v after a permissions violation: %w", subject, op.w.cfg.AckTimeout, perr))
		}
	}
	err := fmt.Errorf("nats: publish to %s: %w", subject, raw)
	if c.permanent {
		return sink.Permanent(sink.WithReason(c.reason, err))
	}
	return sink.WithReason(c.reason, err)
}

// noStreamError decides for a subject that no stream captured: transient
// within NoStreamGrace, then permanent once a stream lookup confirms that
// no stream has the subject.
func (op *writeOp) noStreamError(ctx context.Context, subject string, raw error) error {
	w := op.w
	now := w.cfg.Now()
	first := w.noStream.seen(subject, now)
	since := now.Sub(first)
	grace := w.cfg.NoStreamGrace
	if since < grace {
		return sink.WithReason(ReasonNoStream, fmt.Errorf(
			"nats: no stream for subject %s (for %s, permanent after %s): %w",
			subject, since.Round(time.Millisecond), grace, raw))
	}
	fresh, lookupErr := w.noStream.confirmation(subject, now)
	if !fresh {
		lctx, cancel := context.WithTimeout(ctx, w.cfg.AckTimeout)
		var name string
		name, lookupErr = op.cs.js.StreamNameBySubject(lctx, subject)
		cancel()
		if lookupErr == nil {
			lookupErr = fmt.Errorf("stream %s has the subject now", name)
			w.noStream.confirm(subject, now, nil)
			return sink.WithReason(ReasonNoStream, fmt.Errorf("nats: publish to %s: %w: %w", subject, raw, lookupErr))
		}
		if ctx.Err() == nil {
			w.noStream.confirm(subject, now, lookupErr)
		}
	} else if lookupErr == nil {
		return sink.WithReason(ReasonNoStream, fmt.Errorf("nats: publish to %s: %w (a stream has the subject now)", subject, raw))
	}
	if errors.Is(lookupErr, jetstream.ErrStreamNotFound) {
		if w.noStream.markPermanent(subject) {
			w.log.Warn("no nats stream has the subject; its messages now fail permanently",
				slog.String("subject", subject), slog.Duration("no_stream_for", since))
		}
		return sink.Permanent(sink.WithReason(ReasonNoStream, fmt.Errorf(
			"nats: no stream for subject %s (for %s): %w", subject, since.Round(time.Millisecond), raw)))
	}
	c := classify(lookupErr)
	if c.permanent {
		c.reason = ReasonNoStream
	}
	return sink.WithReason(c.reason, fmt.Errorf("nats: publish to %s: %w; looking up its stream: %w", subject, raw, lookupErr))
}
