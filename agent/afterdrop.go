package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// Two sets of a forwarder outlive a restart, so that a status that said
// delivered does not turn into dropped or pending:
//
//   - delivered-after-drop (decision (e)): messages a backlog policy
//     dropped while their batch was being written, and which were
//     delivered all the same;
//   - delivered-ahead (guarantee 5): messages delivered while another
//     topic held the sink's cursor below them. After a restart the
//     forwarder sends them again; should a backlog cap drop them first,
//     they were still delivered.
//
// Each is kept in SPOOL_DIR/<prefix><sink>, one "seq epoch" a line
// (appended, not fsynced: a process crash keeps what was written), read
// back at start and rewritten from the set once it holds twice what the
// set can. The after-drop log is written at each such delivery; the ahead
// log, which takes most deliveries of a sink with several topics, within
// aheadLogInterval of each delivery and at shutdown: a kill -9 can lose
// that much, as it can of the cursor's position.

// AfterDropFilePrefix and AheadFilePrefix start the names of a sink's
// delivered-after-drop and delivered-ahead logs in the spool directory.
const (
	AfterDropFilePrefix = "delivered-after-drop."
	AheadFilePrefix     = "delivered-ahead."
)

// aheadLogInterval is how long a delivery ahead of the cursor waits to be
// written to the ahead log (with those that follow it).
const aheadLogInterval = 50 * time.Millisecond

// seqSet is a bounded set of spool records: sequence -> epoch (0: any,
// from a log written before epochs were kept).
type seqSet = boundedMap[uint64, uint32]

// has reports whether sid is in s.
func has(s *seqSet, sid spool.ID) bool {
	ep, ok := s.get(sid.Seq)
	return ok && (ep == 0 || ep == sid.Epoch)
}

// seqLog keeps a seqSet in a file. The set is guarded by its owner's lock
// (f.mu), held by every caller of load and add; mu guards the file and
// the lines not written yet, so that the timer's flush needs only mu.
type seqLog struct {
	path     string
	set      *seqSet
	interval time.Duration // 0: written at once
	log      *slog.Logger

	mu      sync.Mutex
	file    *os.File // opened at the first write
	lines   int      // in the file
	pending []byte   // lines not written yet
	timer   *time.Timer
	closed  bool
}

// openSeqLog reads the log at path into set, leaving out the records skip
// says are of no use any more, and rewrites the file from the set.
// Caller holds the set's lock.
func openSeqLog(path string, set *seqSet, interval time.Duration, lg *slog.Logger, skip func(seq uint64) bool) (*seqLog, error) {
	l := &seqLog{path: path, set: set, interval: interval, log: lg}
	fh, err := os.Open(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err == nil {
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			seqS, epS, two := bytes.Cut(sc.Bytes(), []byte(" "))
			seq, err := strconv.ParseUint(string(seqS), 10, 64)
			var ep uint64
			if err == nil && two {
				ep, err = strconv.ParseUint(string(epS), 10, 32)
			}
			if err == nil && !skip(seq) { // a torn line is skipped
				set.put(seq, uint32(ep))
			}
		}
		err = sc.Err()
		fh.Close()
		if err != nil {
			return nil, err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.rewriteLocked(); err != nil {
		lg.Warn("cannot rewrite "+filepath.Base(path), "err", err)
	}
	return l, nil
}

// add puts ids into the set and the log. Caller holds the set's lock.
func (l *seqLog) add(ids []spool.ID) {
	if len(ids) == 0 {
		return
	}
	for _, id := range ids {
		l.set.put(id.Seq, id.Epoch)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if l.lines+len(ids) >= 2*l.set.max {
		if err := l.rewriteLocked(); err != nil { // the set holds ids already
			l.log.Warn("cannot rewrite "+filepath.Base(l.path)+"; these messages may read dropped after a restart", "err", err)
		}
		return
	}
	for _, id := range ids {
		l.pending = strconv.AppendUint(l.pending, id.Seq, 10)
		l.pending = append(l.pending, ' ')
		l.pending = append(strconv.AppendUint(l.pending, uint64(id.Epoch), 10), '\n')
	}
	switch {
	case l.interval <= 0:
		l.flushLocked()
	case l.timer == nil:
		l.timer = time.AfterFunc(l.interval, l.flush)
	}
}

func (l *seqLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.timer = nil
	l.flushLocked()
}

func (l *seqLog) flushLocked() {
	if len(l.pending) == 0 || l.closed {
		return
	}
	var err error
	if l.file == nil {
		l.file, err = os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	}
	if err == nil {
		_, err = l.file.Write(l.pending)
		l.lines += bytes.Count(l.pending, []byte("\n"))
	}
	l.pending = l.pending[:0]
	if err != nil {
		l.log.Warn("cannot write "+filepath.Base(l.path)+"; these messages may read dropped after a restart", "err", err)
	}
}

// rewriteLocked replaces the log with the set (which holds what is
// pending too). The set's lock and mu held.
func (l *seqLog) rewriteLocked() error {
	var b []byte
	for seq, ep := range l.set.m {
		b = append(strconv.AppendUint(b, seq, 10), ' ')
		b = append(strconv.AppendUint(b, uint64(ep), 10), '\n')
	}
	l.pending = l.pending[:0]
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
	l.lines = len(l.set.m)
	return nil
}

// close writes what is pending and closes the file (after the forwarder
// stopped).
func (l *seqLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	l.flushLocked()
	l.closed = true
	if l.file == nil {
		return nil
	}
	err := l.file.Close()
	l.file = nil
	return err
}

// openLogs loads the forwarder's delivered-after-drop and delivered-ahead
// logs into its sets.
func (f *forwarder) openLogs() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir := f.a.sp.Dir()
	var err error
	f.afterDropLog, err = openSeqLog(filepath.Join(dir, AfterDropFilePrefix+f.spec.Name), f.afterDrop, 0, f.log,
		func(uint64) bool { return false })
	if err != nil {
		return err
	}
	acked := f.cursor.Acked()
	f.aheadLog, err = openSeqLog(filepath.Join(dir, AheadFilePrefix+f.spec.Name), f.ahead, aheadLogInterval, f.log,
		func(seq uint64) bool { return seq <= acked }) // the cursor says delivered
	return err
}

// closeLogs closes both logs.
func (f *forwarder) closeLogs() error {
	var errs []error
	for _, l := range []*seqLog{f.afterDropLog, f.aheadLog} {
		if l != nil {
			errs = append(errs, l.close())
		}
	}
	return errors.Join(errs...)
}
