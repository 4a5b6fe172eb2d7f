package agent

import (
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
// delivered does not turn into dropped, pending or failed:
//
//   - delivered-after-drop (decision (e)): messages a backlog policy
//     dropped while their batch was being written, and which were
//     delivered all the same;
//   - delivered-ahead (guarantee 5): messages delivered while another
//     topic held the sink's cursor below them. After a restart the
//     forwarder does not send them again, and a backlog cap that drops
//     them leaves them delivered.
//
// Each is kept in SPOOL_DIR/<prefix><sink>, one "seq epoch\n" a line,
// oldest first (appended, not fsynced: a process crash keeps what was
// written), read back at start and rewritten from the set once it holds
// twice what the set can. The after-drop log is written at each such
// delivery; the ahead log, which takes most deliveries of a sink with
// several topics, within aheadLogInterval of each delivery and at
// shutdown: a kill -9 can lose that much, as it can of the cursor's
// position. Only whole lines of two numbers count: a line cut short is
// ignored. After a failed write (a full disk) nothing is appended until a
// rewrite from the set succeeds, tried at most every seqLogRetry.

// AfterDropFilePrefix and AheadFilePrefix start the names of a sink's
// delivered-after-drop and delivered-ahead logs in the spool directory.
const (
	AfterDropFilePrefix = "delivered-after-drop."
	AheadFilePrefix     = "delivered-ahead."
)

// aheadLogInterval is how long a delivery ahead of the cursor waits to be
// written to the ahead log (with those that follow it).
const aheadLogInterval = 50 * time.Millisecond

// seqLogRetry spaces the rewrites of a log whose last write failed.
const seqLogRetry = time.Second

// seqSet is a bounded set of spool records: sequence -> epoch.
type seqSet = boundedMap[uint64, uint32]

// has reports whether sid is in s.
func has(s *seqSet, sid spool.ID) bool {
	ep, ok := s.get(sid.Seq)
	return ok && ep == sid.Epoch
}

// seqLog keeps a seqSet in a file. mu, the set's owner's lock, guards the
// set and the log; the timer's flush takes it too.
type seqLog struct {
	path     string
	set      *seqSet
	mu       *sync.Mutex
	interval time.Duration // 0: written at once
	log      *slog.Logger

	file    *os.File // opened at the first append
	lines   int      // in the file
	pending []byte   // lines not written yet
	timer   *time.Timer
	closed  bool
	// broken: the last write failed, the file may end in a torn line:
	// nothing is appended until a rewrite succeeds.
	broken   bool
	lastTry  time.Time // of a rewrite while broken
	rewrites int       // attempted
}

// openSeqLog reads the log at path into set, oldest first, leaving out
// what skip says is of no use any more, and rewrites the file from the
// set. Caller holds mu.
func openSeqLog(path string, set *seqSet, mu *sync.Mutex, interval time.Duration, lg *slog.Logger, skip func(spool.ID) bool) (*seqLog, error) {
	l := &seqLog{path: path, set: set, mu: mu, interval: interval, log: lg}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	b = b[:bytes.LastIndexByte(b, '\n')+1] // whole lines only
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte("\n"))
		seqS, epS, two := bytes.Cut(line, []byte(" "))
		seq, err1 := strconv.ParseUint(string(seqS), 10, 64)
		ep, err2 := strconv.ParseUint(string(epS), 10, 32)
		id := spool.ID{Seq: seq, Epoch: uint32(ep)}
		if two && err1 == nil && err2 == nil && seq > 0 && ep > 0 && !skip(id) {
			set.put(id.Seq, id.Epoch)
		}
	}
	l.rewriteLocked()
	return l, nil
}

// add puts ids into the set and the log. Caller holds mu.
func (l *seqLog) add(ids []spool.ID) {
	if len(ids) == 0 {
		return
	}
	for _, id := range ids {
		l.set.put(id.Seq, id.Epoch)
	}
	if l.closed {
		return
	}
	if !l.broken { // else the rewrite writes the set
		for _, id := range ids {
			l.pending = appendSeqLine(l.pending, id.Seq, id.Epoch)
		}
	}
	if l.interval <= 0 && !l.broken {
		l.flushLocked()
		return
	}
	l.armLocked()
}

func appendSeqLine(b []byte, seq uint64, ep uint32) []byte {
	b = append(strconv.AppendUint(b, seq, 10), ' ')
	return append(strconv.AppendUint(b, uint64(ep), 10), '\n')
}

// armLocked makes sure a flush is coming: after the interval, or, while
// broken, when the next rewrite may be tried.
func (l *seqLog) armLocked() {
	if l.timer != nil {
		return
	}
	d := l.interval
	if l.broken {
		d = max(d, time.Until(l.lastTry.Add(seqLogRetry)))
	}
	l.timer = time.AfterFunc(d, l.flush)
}

func (l *seqLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.timer = nil
	l.flushLocked()
}

// flushLocked appends what is pending, or rewrites the file when it grew
// to twice the set or the last write failed.
func (l *seqLog) flushLocked() {
	if l.closed {
		return
	}
	if l.broken {
		if time.Since(l.lastTry) < seqLogRetry {
			l.armLocked()
			return
		}
		l.rewriteLocked()
		return
	}
	if len(l.pending) == 0 {
		return
	}
	n := bytes.Count(l.pending, []byte("\n"))
	if l.lines+n >= 2*l.set.max {
		l.rewriteLocked() // the set holds what is pending
		return
	}
	var err error
	if l.file == nil {
		l.file, err = os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	}
	if err == nil {
		_, err = l.file.Write(l.pending) // a short write returns an error
	}
	l.pending = l.pending[:0]
	if err != nil {
		l.breakLocked(err)
		return
	}
	l.lines += n
}

// breakLocked stops appending after a failed write: the file may end in a
// torn line. A rewrite from the set mends it.
func (l *seqLog) breakLocked(err error) {
	if !l.broken {
		l.log.Warn("cannot write "+filepath.Base(l.path)+"; until it can be rewritten, messages it should keep may read dropped or pending after a restart", "err", err)
	}
	l.broken, l.lastTry = true, time.Now()
	l.pending = l.pending[:0]
	l.armLocked()
}

// rewriteLocked replaces the file with the set, oldest first; on failure
// the log is broken until a later rewrite succeeds.
func (l *seqLog) rewriteLocked() {
	l.rewrites++
	b := make([]byte, 0, 24*len(l.set.m))
	l.set.each(func(seq uint64, ep uint32) { b = appendSeqLine(b, seq, ep) })
	tmp := l.path + ".tmp"
	err := os.WriteFile(tmp, b, 0o600)
	if err == nil {
		err = os.Rename(tmp, l.path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		l.breakLocked(fmt.Errorf("%s: %w", filepath.Base(l.path), err))
		return
	}
	if l.file != nil {
		l.file.Close()
		l.file = nil
	}
	if l.broken {
		l.log.Info(filepath.Base(l.path) + " rewritten after a failed write")
	}
	l.broken, l.pending, l.lines = false, l.pending[:0], len(l.set.m)
}

// close writes what is pending and closes the file (after the forwarder
// stopped). Caller holds mu.
func (l *seqLog) close() error {
	if l.closed {
		return nil
	}
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	if l.broken {
		l.lastTry = time.Time{} // one more try
	}
	l.flushLocked()
	if l.timer != nil { // broken still
		l.timer.Stop()
		l.timer = nil
	}
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
	// Every entry names an earlier open of this spool; one of this open's
	// epoch or later is from another spool that was in this directory
	// (removed and created again), whose epochs started over.
	epoch := f.a.sp.Epoch()
	stale := func(id spool.ID) bool { return id.Epoch >= epoch }
	var err error
	f.afterDropLog, err = openSeqLog(filepath.Join(dir, AfterDropFilePrefix+f.spec.Name), f.afterDrop, &f.mu, 0, f.log, stale)
	if err != nil {
		return err
	}
	// Below the cursor, an ahead delivery is of no use any more, unless
	// the cursor got past it by a drop, or was created past it (a sink
	// added again under a removed cursor's name: what the sink delivered
	// before still reads delivered).
	acked, born := f.cursor.Acked(), f.cursor.Born()
	f.aheadLog, err = openSeqLog(filepath.Join(dir, AheadFilePrefix+f.spec.Name), f.ahead, &f.mu, aheadLogInterval, f.log,
		func(id spool.ID) bool {
			return stale(id) || id.Seq <= acked && id.Seq > born && !f.cursor.Dropped(id.Seq) && !f.cursor.DropForgotten(id.Seq)
		})
	return err
}

// closeStatusLogs closes every forwarder's logs and every queue's
// delivered-after-drop log: at shutdown while the spool directory is still
// locked, and when New or Run fails (a broken log's retry timer would
// write on).
func (a *Agent) closeStatusLogs() error {
	var errs []error
	for _, f := range a.fwds {
		errs = append(errs, f.closeLogs())
	}
	for _, q := range a.queues {
		q.mu.Lock()
		errs = append(errs, q.afterDropLog.close())
		q.mu.Unlock()
	}
	return errors.Join(errs...)
}

// closeLogs closes both logs.
func (f *forwarder) closeLogs() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for _, l := range []*seqLog{f.afterDropLog, f.aheadLog} {
		if l != nil {
			errs = append(errs, l.close())
		}
	}
	return errors.Join(errs...)
}
