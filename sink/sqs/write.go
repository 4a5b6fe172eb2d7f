package sqs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sluiceio/sluice/sink"
)

// Write sends msgs with SendMessageBatch requests of at most 10 entries and
// RequestBytes each, and reports the outcome per the sink contract (see the
// package documentation). A message counts as delivered only when SQS
// lists its entry as Successful.
func (w *Writer) Write(ctx context.Context, msgs []sink.Message) error {
	if w.closed.Load() {
		return sink.WithReason(ReasonClosed, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return sink.WithReason(classify(err).reason, fmt.Errorf("sqs: %w", err))
	}
	w.active.RLock()
	defer w.active.RUnlock()
	if w.closed.Load() {
		return sink.WithReason(ReasonClosed, ErrClosed)
	}
	if len(msgs) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(w.closing, cancel)()

	op := &writeOp{w: w, msgs: msgs, errs: make([]error, len(msgs)), entries: make([]entry, len(msgs))}
	var pending []int
	for i := range msgs {
		msgs[i].Delivered = false
		en, err := w.cfg.encode(&msgs[i])
		if err != nil {
			op.errs[i] = err
			continue
		}
		op.entries[i] = en
		pending = append(pending, i)
	}
	chunks := op.chunk(pending)
	if w.cfg.fifo {
		op.sendOrdered(ctx, chunks)
	} else {
		op.sendPipelined(ctx, chunks)
	}
	return op.finish()
}

// writeOp is the state of one Write.
type writeOp struct {
	w       *Writer
	msgs    []sink.Message
	entries []entry
	errs    []error // per message: nil once delivered, else the failure

	mu                     sync.Mutex
	reached, auth, noQueue bool
	cause                  error
	// halt is the error of a request that failed as a whole for a reason
	// every later request would share (SQS unreachable, credentials, no
	// queue): requests not yet sent are not sent, their messages fail with
	// it. A hung server thus costs one RequestTimeout per Write, not one per
	// request.
	halt error
}

// chunk cuts idxs, in order, into requests of at most MaxBatchEntries
// entries and RequestBytes bytes.
func (op *writeOp) chunk(idxs []int) [][]int {
	var out [][]int
	var cur []int
	size := 0
	for _, i := range idxs {
		s := op.entries[i].size
		if len(cur) == MaxBatchEntries || (len(cur) > 0 && size+s > op.w.cfg.RequestBytes) {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, i)
		size += s
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// sendPipelined sends the chunks of a standard queue, MaxInFlight at a time.
func (op *writeOp) sendPipelined(ctx context.Context, chunks [][]int) {
	if len(chunks) == 1 {
		op.send(ctx, chunks[0])
		return
	}
	next := make(chan []int)
	var wg sync.WaitGroup
	for range min(op.w.cfg.MaxInFlight, len(chunks)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range next {
				op.sendUnlessHalted(ctx, c)
			}
		}()
	}
	for _, c := range chunks {
		next <- c
	}
	close(next)
	wg.Wait()
}

// sendOrdered sends the chunks of a FIFO queue one after the other. Once a
// message of a group failed, later messages of that group are not sent in
// this Write (a retry would otherwise put them behind their successors).
func (op *writeOp) sendOrdered(ctx context.Context, chunks [][]int) {
	failed := map[string]bool{}
	for _, c := range chunks {
		var send []int
		for _, i := range c {
			if g := op.entries[i].group; failed[g] {
				op.errs[i] = sink.WithReason(ReasonNotSent, fmt.Errorf("sqs: not sent: an earlier message of group %q failed in this batch", g))
			} else {
				send = append(send, i)
			}
		}
		if len(send) > 0 {
			op.sendUnlessHalted(ctx, send)
		}
		for _, i := range c {
			if op.errs[i] != nil {
				failed[op.entries[i].group] = true
			}
		}
	}
}

// sendUnlessHalted sends idxs, or fails them with the halting error of an
// earlier request of this Write.
func (op *writeOp) sendUnlessHalted(ctx context.Context, idxs []int) {
	op.mu.Lock()
	halt := op.halt
	op.mu.Unlock()
	if halt == nil {
		op.send(ctx, idxs)
		return
	}
	for _, i := range idxs {
		op.errs[i] = halt
	}
}

// contentCodes are request-level errors that are about the entries of the
// request: the request is split to find the message they are about. Any
// other request-level error is retried as it is.
var contentCodes = map[string]bool{
	"MessageTooLong": true, "BatchRequestTooLong": true, "InvalidMessageContents": true,
	"InvalidParameterValue": true, "InvalidAttributeName": true, "InvalidAttributeValue": true,
}

// send makes one SendMessageBatch request for the messages idxs and records
// the outcome of each.
func (op *writeOp) send(ctx context.Context, idxs []int) {
	w := op.w
	in := &sqs.SendMessageBatchInput{QueueUrl: aws.String(w.cfg.URL), Entries: make([]types.SendMessageBatchRequestEntry, len(idxs))}
	for j, i := range idxs {
		e := op.entries[i].e
		e.Id = aws.String(strconv.Itoa(j))
		in.Entries[j] = e
	}
	rctx, cancel := context.WithTimeout(ctx, w.cfg.RequestTimeout)
	start := time.Now()
	out, err := w.client.SendMessageBatch(rctx, in)
	timedOut := errors.Is(rctx.Err(), context.DeadlineExceeded)
	cancel()
	w.metrics.request(time.Since(start).Seconds())
	if err != nil {
		err = op.requestError(ctx, timedOut, err)
		c := classify(err)
		if c.permanent && !contentCodes[codeOf(err)] {
			c.permanent = false
		}
		op.note(c, err)
		switch {
		case c.permanent && len(idxs) == 1:
			op.errs[idxs[0]] = sink.Permanent(sink.WithReason(c.reason, err))
		case c.permanent:
			// About some entry of the request, SQS does not say which:
			// one request per message finds it.
			for _, i := range idxs {
				op.send(ctx, []int{i})
			}
		default:
			e := sink.WithReason(c.reason, err)
			for _, i := range idxs {
				op.errs[i] = e
			}
			op.mu.Lock()
			if op.halt == nil {
				op.halt = e
			}
			op.mu.Unlock()
		}
		return
	}
	op.note(class{reached: true}, nil)

	done := make([]bool, len(idxs))
	for _, s := range out.Successful {
		if j, ok := entryIndex(s.Id, len(idxs)); ok && !done[j] {
			done[j] = true
			op.errs[idxs[j]] = nil
			op.msgs[idxs[j]].Delivered = true
		}
	}
	for _, f := range out.Failed {
		j, ok := entryIndex(f.Id, len(idxs))
		if !ok || done[j] {
			continue
		}
		done[j] = true
		code := aws.ToString(f.Code)
		c := classifyCode(code, f.SenderFault)
		err := fmt.Errorf("sqs: entry refused: %s (sender fault %v): %s", code, f.SenderFault, aws.ToString(f.Message))
		op.note(c, err)
		if c.permanent {
			op.errs[idxs[j]] = sink.Permanent(sink.WithReason(c.reason, err))
		} else {
			op.errs[idxs[j]] = sink.WithReason(c.reason, err)
		}
	}
	for j, ok := range done {
		if !ok {
			// Never count an entry as delivered that SQS did not list.
			op.errs[idxs[j]] = sink.WithReason(ReasonNoResult, errors.New("sqs: the answer lists this entry neither as successful nor as failed"))
		}
	}
}

// entryIndex parses an entry id this Writer set.
func entryIndex(id *string, n int) (int, bool) {
	j, err := strconv.Atoi(aws.ToString(id))
	return j, err == nil && j >= 0 && j < n
}

// codeOf returns the normalised SQS error code in err, or "".
func codeOf(err error) string {
	var ae interface{ ErrorCode() string }
	if errors.As(err, &ae) {
		return normCode(ae.ErrorCode())
	}
	return ""
}

// requestError turns the error of a request whose context ended into
// ErrClosed (Close aborted it), the caller's context error, or a timeout of
// the request.
func (op *writeOp) requestError(ctx context.Context, timedOut bool, err error) error {
	switch {
	case op.w.closed.Load() && ctx.Err() != nil:
		return fmt.Errorf("%w (%v)", ErrClosed, err)
	case ctx.Err() != nil:
		return fmt.Errorf("sqs: %w (%v)", ctx.Err(), err)
	case timedOut:
		return fmt.Errorf("sqs: request timed out after %v: %w", op.w.cfg.RequestTimeout, context.DeadlineExceeded)
	}
	return fmt.Errorf("sqs: send message batch: %w", err)
}

// note folds one failure into the Write's state.
func (op *writeOp) note(c class, err error) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.reached = op.reached || c.reached
	op.auth = op.auth || c.reason == ReasonAuth
	op.noQueue = op.noQueue || c.reason == ReasonNoQueue
	if op.cause == nil && err != nil {
		op.cause = sink.WithReason(c.reason, err)
	}
}

// finish updates state and metrics and builds Write's result.
func (op *writeOp) finish() error {
	delivered, permanent := 0, 0
	var first error
	failed := map[string]int{}
	for _, err := range op.errs {
		switch {
		case err == nil:
			delivered++
		default:
			if first == nil {
				first = err
			}
			failed[sink.Reason(err)]++
			if sink.IsPermanent(err) {
				permanent++
			}
		}
	}
	op.w.updateState(op.reached, delivered > 0, op.auth, op.noQueue, op.cause)
	op.w.metrics.outcome(delivered, failed)
	switch {
	case first == nil:
		return nil
	case delivered == 0 && permanent == 0:
		return first
	default:
		return &sink.BatchError{Errs: op.errs}
	}
}
