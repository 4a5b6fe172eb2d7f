package discard

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/sluiceio/sluice/sink"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("discard: closed")

// Writer drops every message. Its counters are safe to read concurrently.
type Writer struct {
	msgs    atomic.Int64
	batches atomic.Int64
	closed  atomic.Bool
}

var _ sink.Sink = (*Writer)(nil)

// New returns a discard sink.
func New() *Writer { return &Writer{} }

// Write counts msgs and drops them. It fails only when ctx is done or the
// sink is closed; such errors are transient.
func (w *Writer) Write(ctx context.Context, msgs []sink.Message) error {
	if w.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("discard: %w", err)
	}
	if len(msgs) > 0 {
		w.msgs.Add(int64(len(msgs)))
		w.batches.Add(1)
	}
	return nil
}

// Close makes later Writes fail. Close is idempotent.
func (w *Writer) Close(context.Context) error {
	w.closed.Store(true)
	return nil
}

// Count returns how many messages were accepted.
func (w *Writer) Count() int64 { return w.msgs.Load() }

// Batches returns how many non-empty batches were accepted.
func (w *Writer) Batches() int64 { return w.batches.Load() }
