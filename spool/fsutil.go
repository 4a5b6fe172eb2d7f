package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Errors returned by the spool. Callers compare with errors.Is.
var (
	// ErrClosed: the spool was closed.
	ErrClosed = errors.New("spool: closed")
	// ErrLocked: another process holds the spool directory.
	ErrLocked = errors.New("spool: directory is locked by another process")
	// ErrFull: the byte cap is reached and the full policy is reject.
	ErrFull = errors.New("spool: full")
	// ErrTimeout: an append did not complete within the append timeout.
	// Its records may or may not have been written.
	ErrTimeout = errors.New("spool: append timed out")
	// ErrDiskFull: the file system is out of space (ENOSPC, EDQUOT).
	ErrDiskFull = errors.New("spool: disk full")
	// ErrIO: a write or fsync failed for another reason (EIO, ...).
	ErrIO = errors.New("spool: i/o error")
	// ErrCorrupt: on-disk state the spool cannot repair by itself.
	ErrCorrupt = errors.New("spool: corrupt")
	// ErrTooLarge: a record is larger than the spool accepts.
	ErrTooLarge = errors.New("spool: record too large")
	// ErrNoCursor: the named cursor does not exist.
	ErrNoCursor = errors.New("spool: no such cursor")
	// ErrNoRecord: no record with that sequence is on disk.
	ErrNoRecord = errors.New("spool: no such record")
	// ErrCursorOpen: the cursor is already open.
	ErrCursorOpen = errors.New("spool: cursor already open")
)

// classify maps an OS error of a write path onto ErrDiskFull or ErrIO,
// keeping the original error wrapped.
func classify(err error) error {
	if err == nil || errors.Is(err, ErrDiskFull) || errors.Is(err, ErrIO) {
		return err
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrDiskFull, err)
	}
	return fmt.Errorf("%w: %w", ErrIO, err)
}

// syncDir fsyncs a directory so that created, renamed and removed entries
// survive a machine crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", classify(err))
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir: %w", classify(err))
	}
	return nil
}

// writeFileSync writes a new file and fsyncs it.
func writeFileSync(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return classify(err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return classify(err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return classify(err)
	}
	return classify(f.Close())
}

// atomicWrite replaces name with data: temp file, fsync, rename, fsync dir.
func atomicWrite(name string, data []byte) error {
	if err := replaceFile(name, data); err != nil {
		return err
	}
	return syncDir(filepath.Dir(name))
}

// replaceFile replaces name with data by a temp file, fsynced, renamed
// over it. Durable once the caller has fsynced the directory.
func replaceFile(name string, data []byte) error {
	tmp := name + ".tmp"
	if err := writeFileSync(tmp, data); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return classify(err)
	}
	return nil
}

// lockDir takes an exclusive, non-blocking flock on dir/LOCK. The lock is
// released when the process exits, however it exits.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("lock: %w", err)
	}
	return f, nil
}
