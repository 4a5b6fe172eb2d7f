package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// Defaults for the zero values of Options.
const (
	DefaultRotateBytes = 64 << 20
	DefaultRotateAge   = time.Hour
)

// Permissions of what the Writer creates; the process umask narrows them.
const (
	dirPerm  = 0o755
	filePerm = 0o644
)

// A buffer grown by a huge batch is dropped rather than kept for the next.
const maxKeptBuffer = 16 << 20

var (
	// ErrClosed is returned by Write after Close.
	ErrClosed = errors.New("file: closed")
	// ErrNoDir is returned by New when Options.Dir is empty.
	ErrNoDir = errors.New("file: no directory")
)

// Options configures a Writer. The zero value of each field other than Dir
// means its default.
type Options struct {
	// Dir is the output directory. Required; created when missing.
	Dir string
	// RotateBytes: a batch that would take the current file past this size
	// goes to a new file instead (a batch larger than the limit gets a file
	// of its own). 0 means DefaultRotateBytes, negative means no size limit.
	RotateBytes int64
	// RotateAge: the first batch written once the current file is this old
	// goes to a new file. Checked when writing: an idle file stays current
	// until the next batch. 0 means DefaultRotateAge, negative means no age
	// limit.
	RotateAge time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Writer is the file sink. See the package documentation.
type Writer struct {
	opts   Options
	closed atomic.Bool
	// sem is a one-slot lock held by Write and Close; a channel so that
	// waiting for it honours ctx.
	sem chan struct{}

	// Guarded by sem.
	ready  bool   // directory created, existing files scanned and repaired
	seq    uint64 // sequence number of the newest file
	f      *os.File
	name   string
	opened time.Time
	size   int64 // bytes in f up to the end of the last acknowledged batch
	dirty  bool  // a write or fsync failed: bytes after size are not trusted
	buf    []byte
}

var _ sink.Sink = (*Writer)(nil)

// New returns a file sink writing into opts.Dir. It fails only on invalid
// options: it tries to create and scan the directory at once, and when that
// fails every Write retries it and returns the error as transient, as for an
// unreachable broker.
func New(opts Options) (*Writer, error) {
	if opts.Dir == "" {
		return nil, ErrNoDir
	}
	if opts.RotateBytes == 0 {
		opts.RotateBytes = DefaultRotateBytes
	}
	if opts.RotateAge == 0 {
		opts.RotateAge = DefaultRotateAge
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	w := &Writer{opts: opts, sem: make(chan struct{}, 1)}
	_ = w.prepare() // retried and reported by Write
	return w, nil
}

// Write appends the batch to the current file with one write and returns
// nil only after the data was fsynced (and, for a new file, its directory
// entry). Every error is transient and labelled with reason "io"; the
// forwarder retries the same batch, and the retry never leaves a partial
// copy of the failed attempt in any file. A write or fsync already under way
// is not interrupted by ctx.
func (w *Writer) Write(ctx context.Context, msgs []sink.Message) error {
	if err := w.lock(ctx); err != nil {
		return fmt.Errorf("file: %w", err)
	}
	defer w.unlock()
	if w.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("file: %w", err)
	}
	if len(msgs) == 0 {
		return nil
	}
	w.buf = AppendBatch(w.buf[:0], msgs)
	err := w.append(w.buf)
	if cap(w.buf) > maxKeptBuffer {
		w.buf = nil
	}
	if err != nil {
		return sink.WithReason("io", fmt.Errorf("file: %w", err))
	}
	return nil
}

// Close fsyncs and closes the current file. When ctx ends while a Write is
// still running, Close returns ctx's error and that Write closes the file
// as it returns. Close is idempotent.
func (w *Writer) Close(ctx context.Context) error {
	w.closed.Store(true)
	if err := w.lock(ctx); err != nil {
		return fmt.Errorf("file: close: %w", err)
	}
	defer w.unlock()
	if err := w.closeFile(); err != nil {
		return sink.WithReason("io", fmt.Errorf("file: close: %w", err))
	}
	return nil
}

func (w *Writer) lock(ctx context.Context) error {
	select { // a free lock wins over a done ctx
	case w.sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case w.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *Writer) unlock() {
	if w.closed.Load() {
		_ = w.closeFile() // Close already returned; nobody to report to
	}
	<-w.sem
}

// append writes p, one or more complete lines, to the current file.
func (w *Writer) append(p []byte) error {
	if err := w.prepare(); err != nil {
		return err
	}
	if w.f != nil {
		if w.dirty {
			if err := w.repair(); err != nil {
				return err
			}
		}
		if !w.linked() || w.due(len(p)) {
			if err := w.closeFile(); err != nil {
				return err
			}
		}
	}
	if w.f == nil {
		if err := w.create(); err != nil {
			w.ready = false // the directory may be gone: recreate and rescan next time
			return err
		}
	}
	if _, err := w.f.Write(p); err != nil {
		w.dirty = true
		return err
	}
	if err := w.f.Sync(); err != nil {
		w.dirty = true
		return fmt.Errorf("sync %s: %w", w.name, err)
	}
	w.size += int64(len(p))
	return nil
}

// prepare creates the directory, finds the newest sequence number and cuts
// a torn last line (a crash during a write) off the newest file.
func (w *Writer) prepare() error {
	if w.ready {
		return nil
	}
	dir := w.opts.Dir
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		if err := syncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
			return fmt.Errorf("sync parent of new directory: %w", err)
		}
	}
	files, err := listFiles(dir)
	if err != nil {
		return fmt.Errorf("list directory: %w", err)
	}
	if n := len(files); n > 0 {
		last := files[n-1]
		if _, err := cutTornTail(filepath.Join(dir, last.name)); err != nil {
			return fmt.Errorf("repair torn tail: %w", err)
		}
		w.seq = max(w.seq, last.seq)
	}
	w.ready = true
	return nil
}

// repair cuts the current file back to the end of the last acknowledged
// batch after a failed write or fsync. The failed bytes may be partly on
// disk, or dropped from the page cache after a failed fsync, so they are
// removed and the batch is written again after the good bytes; a failed
// fsync is never simply retried.
func (w *Writer) repair() error {
	if err := w.f.Truncate(w.size); err != nil {
		return fmt.Errorf("truncate %s after failed write: %w", w.name, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("sync %s after truncate: %w", w.name, err)
	}
	w.dirty = false
	return nil
}

// linked reports whether the current file is still the one at its path.
// A file deleted or renamed by another program is finished and a new one
// started, so that no batch is acknowledged into an unlinked file.
func (w *Writer) linked() bool {
	fi, err := os.Stat(filepath.Join(w.opts.Dir, w.name))
	if err != nil {
		return false
	}
	ofi, err := w.f.Stat()
	return err == nil && os.SameFile(fi, ofi)
}

// due reports whether a batch of n bytes must go to a new file.
func (w *Writer) due(n int) bool {
	if w.size == 0 {
		return false
	}
	if lim := w.opts.RotateBytes; lim > 0 && w.size+int64(n) > lim {
		return true
	}
	if age := w.opts.RotateAge; age > 0 && !w.opts.Now().Before(w.opened.Add(age)) {
		return true
	}
	return false
}

// create opens a new current file and fsyncs its directory entry.
func (w *Writer) create() error {
	now := w.opts.Now()
	for range 1000 {
		w.seq++
		name := fileName(now, w.seq)
		path := filepath.Join(w.opts.Dir, name)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, filePerm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("create file: %w", err)
		}
		if err := syncDir(w.opts.Dir); err != nil {
			f.Close()
			os.Remove(path)
			return fmt.Errorf("sync directory: %w", err)
		}
		w.f, w.name, w.opened, w.size, w.dirty = f, name, now, 0, false
		return nil
	}
	return errors.New("create file: no free name")
}

// closeFile finishes the current file: cut a failed tail, fsync, close.
func (w *Writer) closeFile() error {
	if w.f == nil {
		return nil
	}
	var err error
	if w.dirty {
		err = w.repair()
	} else {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", w.name, cerr)
	}
	w.f = nil
	return err
}
