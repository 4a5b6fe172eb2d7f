package agent

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Decision (e): a message a backlog policy dropped while its batch was
// being written may still be delivered, and its status then says
// delivered. Each forwarder remembers such records in a bounded set; so
// that a restart does not turn them back into `dropped`, each set is also
// kept in SPOOL_DIR/delivered-after-drop.<sink>, one sequence a line,
// appended at each such delivery under the forwarder's lock (not
// fsynced: a process crash keeps it). At start the file is read into the
// set and rewritten from it; while running it is rewritten once it holds
// twice what the set can.

// AfterDropFilePrefix starts the name of a sink's delivered-after-drop
// log in the spool directory.
const AfterDropFilePrefix = "delivered-after-drop."

type afterDropLog struct {
	f     *forwarder
	path  string
	file  *os.File // opened at the first append
	lines int
}

// openAfterDrop loads f's log into its set and hooks the set to the log.
func (f *forwarder) openAfterDrop() (*afterDropLog, error) {
	l := &afterDropLog{f: f, path: filepath.Join(f.a.sp.Dir(), AfterDropFilePrefix+f.spec.Name)}
	fh, err := os.Open(l.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			if seq, err := strconv.ParseUint(sc.Text(), 10, 64); err == nil { // a torn line is skipped
				f.afterDrop.put(seq, struct{}{})
			}
		}
		err = sc.Err()
		fh.Close()
		if err != nil {
			return nil, err
		}
	}
	if err := l.rewriteLocked(); err != nil {
		f.log.Warn("cannot rewrite the delivered-after-drop log", "err", err)
	}
	f.afterDrop.onPut = func(seq uint64, _ struct{}) { l.addLocked(seq) }
	return l, nil
}

// addLocked appends one delivery. f.mu held.
func (l *afterDropLog) addLocked(seq uint64) {
	var err error
	if l.lines >= 2*l.f.afterDrop.max {
		err = l.rewriteLocked() // the set already holds seq
	} else {
		if l.file == nil {
			l.file, err = os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		}
		if err == nil {
			_, err = l.file.Write(append(strconv.AppendUint(nil, seq, 10), '\n'))
			l.lines++
		}
	}
	if err != nil {
		l.f.log.Warn("cannot write the delivered-after-drop log; this message may read dropped after a restart", "seq", seq, "err", err)
	}
}

// rewriteLocked replaces the log with the set. f.mu held.
func (l *afterDropLog) rewriteLocked() error {
	var b []byte
	for seq := range l.f.afterDrop.m {
		b = append(strconv.AppendUint(b, seq, 10), '\n')
	}
	if l.file != nil {
		l.file.Close()
		l.file = nil
	}
	tmp := l.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(l.path), err)
	}
	if err := os.Rename(tmp, l.path); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(l.path), err)
	}
	l.lines = len(l.f.afterDrop.m)
	return nil
}

// close closes the log file (after the forwarder stopped).
func (l *afterDropLog) close() error {
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	if l.file == nil {
		return nil
	}
	err := l.file.Close()
	l.file = nil
	return err
}
