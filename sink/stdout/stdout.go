package stdout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/file"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("stdout: closed")

// osStdoutMu serializes the batches of every Writer on os.Stdout.
var osStdoutMu sync.Mutex

// A buffer grown by a huge batch is dropped rather than kept for the next.
const maxKeptBuffer = 16 << 20

// Options configures a Writer.
type Options struct {
	// Out receives the NDJSON lines; nil means os.Stdout.
	Out io.Writer
}

// Writer is the stdout sink. See the package documentation.
type Writer struct {
	out    io.Writer
	mu     *sync.Mutex // non-nil when out is os.Stdout
	closed atomic.Bool

	// Owned by the goroutine calling Write.
	buf  []byte
	torn bool // the last failed write ended inside a line
}

var _ sink.Sink = (*Writer)(nil)

// New returns a stdout sink.
func New(opts Options) *Writer {
	w := &Writer{out: opts.Out}
	if w.out == nil {
		w.out = os.Stdout
	}
	if f, ok := w.out.(*os.File); ok && f == os.Stdout {
		w.mu = &osStdoutMu
	}
	return w
}

// Write writes the batch with one call to the writer. Errors are transient.
func (w *Writer) Write(ctx context.Context, msgs []sink.Message) error {
	if w.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("stdout: %w", err)
	}
	if len(msgs) == 0 {
		return nil
	}
	w.buf = w.buf[:0]
	if w.torn {
		w.buf = append(w.buf, '\n')
	}
	w.buf = file.AppendBatch(w.buf, msgs)
	if w.mu != nil {
		w.mu.Lock()
	}
	n, err := w.out.Write(w.buf)
	if w.mu != nil {
		w.mu.Unlock()
	}
	if err == nil && n < len(w.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		if n > 0 {
			w.torn = w.buf[n-1] != '\n'
		}
		return sink.WithReason("io", fmt.Errorf("stdout: write batch: %w", err))
	}
	w.torn = false
	if cap(w.buf) > maxKeptBuffer {
		w.buf = nil
	}
	return nil
}

// Close makes later Writes fail. It does not close or sync the writer and
// does not wait for a Write in progress. Close is idempotent.
func (w *Writer) Close(context.Context) error {
	w.closed.Store(true)
	return nil
}
