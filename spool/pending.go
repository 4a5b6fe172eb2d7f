package spool

import (
	"context"
	"time"
)

// Pending is an append whose outcome its caller may stop waiting for
// without losing it: after Wait gave up (ErrTimeout, the context's error),
// Outcome still returns what became of the records — written, with their
// ID, or failed, with the error. The durability rule is Append's: a nil
// error means the records are durable under the sync policy.
type Pending struct {
	s        *Spool
	req      *appendReq // nil for an empty batch
	deadline time.Time  // AppendTimeout after AppendAsync began
}

// AppendAsync queues the records of b (which belongs to the spool from the
// call on) and returns without waiting for the commit. It blocks only while
// the commit queue is full, at most AppendTimeout or until ctx is done. An
// error means the records were not queued and will never be written:
// ErrClosed, ErrTooLarge, ErrTimeout, or the context's error.
func (s *Spool) AppendAsync(ctx context.Context, b *Batch) (*Pending, error) {
	deadline := time.Now().Add(s.opts.AppendTimeout)
	timer := time.NewTimer(s.opts.AppendTimeout)
	defer timer.Stop()
	req, err := s.submit(ctx, b, timer.C)
	if err != nil {
		return nil, err
	}
	return &Pending{s: s, req: req, deadline: deadline}, nil
}

// Wait waits for the outcome as AppendBatch does: until the records are
// durable (their first ID) or failed (ErrFull, ErrDiskFull, ErrIO,
// ErrClosed), or until AppendTimeout since AppendAsync began (ErrTimeout)
// or ctx is done (its error). After ErrTimeout or a context error the
// outcome is unknown, and Wait or Outcome may be called again for it.
func (p *Pending) Wait(ctx context.Context) (ID, error) {
	if p.req == nil {
		return ID{}, nil
	}
	timer := time.NewTimer(time.Until(p.deadline))
	defer timer.Stop()
	return p.s.await(ctx, p.req, timer.C)
}

// Outcome blocks until the outcome is known and returns it. It never gives
// up: the commit goroutine answers every request it takes, and one it
// never took when the spool closed is ErrClosed (never written).
func (p *Pending) Outcome() (ID, error) {
	if p.req == nil {
		return ID{}, nil
	}
	return p.s.await(context.Background(), p.req, nil)
}
