package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tidwall/wal"
)

type appendReq struct {
	buf   []byte // envelopes, each header + payload, back to back
	bytes int64  // on-disk bytes (frames)
	lazy  bool   // SyncAlways: need not wait for an fsync of its own (AppendLazy)
	res   appendRes
	done  chan struct{} // closed by the commit goroutine once res is set
}

// finish publishes the outcome; the commit goroutine calls it exactly once
// per request it took from the queue.
func (r *appendReq) finish(res appendRes) {
	r.res = res
	close(r.done)
}

type appendRes struct {
	first uint64
	err   error
}

// Append writes records durably and returns the ID of the first one; record
// i gets sequence first.Seq+i and the same epoch. It returns when the
// records are durable under the sync policy, or with an error:
// ErrFull (cap reached, policy reject), ErrDiskFull, ErrIO, ErrClosed,
// ErrTooLarge, or ErrTimeout / the context's error when it gave up waiting
// — in that case the outcome is unknown: the records may still be written.
// The records' bytes are copied before Append returns; the caller may reuse
// them at once.
func (s *Spool) Append(ctx context.Context, records ...[]byte) (ID, error) {
	return s.AppendBatch(ctx, batchOf(records, false))
}

// batchOf copies records into a new batch.
func batchOf(records [][]byte, lazy bool) *Batch {
	size := 0
	for _, r := range records {
		size += len(r)
	}
	b := NewBatch(len(records), size)
	for _, r := range records {
		b.Add(r)
	}
	b.lazy = lazy
	return b
}

// AppendLazy is Append for records whose durability may trail: they are
// written (to the OS, so they survive a crash of the process) in the next
// group commit like any others, but under SyncAlways that commit fsyncs
// only when it also carries an ordinary append. Otherwise the records
// become durable with the next ordinary append's fsync (an fsync covers
// everything written to the file before it) or, at the latest, with a
// sync SyncInterval after them. A machine crash may lose them; then it
// loses every record after them too, never one before a record it keeps.
// It returns once the records are written, not when they are durable.
// Under SyncInterval and SyncNever it is Append.
func (s *Spool) AppendLazy(ctx context.Context, records ...[]byte) (ID, error) {
	return s.AppendBatch(ctx, batchOf(records, true))
}

// Batch lays records out for AppendBatch back to back, each after room for
// its envelope header, so that a record is encoded once, in place, and the
// spool writes those bytes without copying them again.
type Batch struct {
	buf   []byte
	n     int
	lazy  bool
	spent bool // given to AppendBatch: its records are the spool's now
}

// errSpentBatch: a batch passed to AppendBatch a second time (after an
// error, say) would otherwise read as an empty batch, appended at once.
var errSpentBatch = errors.New("spool: batch already passed to AppendBatch; build a new one")

// NewBatch returns a batch with room for the given number of records of
// the given total payload bytes.
func NewBatch(records, bytes int) *Batch {
	return &Batch{buf: getBuf(records*headerSize + bytes)}
}

// Begin starts a record. It returns the batch's bytes followed by room for
// the record's header; append the record to them and pass the result to
// End.
func (b *Batch) Begin() []byte {
	return append(b.buf, make([]byte, headerSize)...)
}

// End finishes the record that buf, from Begin, now ends with.
func (b *Batch) End(buf []byte) {
	binary.LittleEndian.PutUint32(buf[len(b.buf)+24:], uint32(len(buf)-len(b.buf)-headerSize))
	b.buf = buf
	b.n++
}

// Add appends a copy of rec as one record.
func (b *Batch) Add(rec []byte) { b.End(append(b.Begin(), rec...)) }

// Len is the number of records in the batch.
func (b *Batch) Len() int { return b.n }

// AppendBatch is Append for the records of b, which belongs to the spool
// from the call on.
func (s *Spool) AppendBatch(ctx context.Context, b *Batch) (ID, error) {
	timer := time.NewTimer(s.opts.AppendTimeout)
	defer timer.Stop()
	req, err := s.submit(ctx, b, timer.C)
	if err != nil || req == nil {
		return ID{}, err
	}
	return s.await(ctx, req, timer.C)
}

// submit checks and seals b's records and queues them for the commit
// goroutine. An error means the records were not queued and never will be
// written. A nil request (and nil error) is an empty batch.
func (s *Spool) submit(ctx context.Context, b *Batch, timeout <-chan time.Time) (*appendReq, error) {
	if b.spent {
		return nil, errSpentBatch
	}
	if b.n == 0 {
		return nil, nil
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	now := time.Now().UnixNano()
	disk := int64(0)
	for off := 0; off < len(b.buf); {
		h := b.buf[off:]
		n := int(binary.LittleEndian.Uint32(h[24:]))
		if n > s.opts.MaxRecordBytes {
			return nil, fmt.Errorf("%w: %d bytes > %d", ErrTooLarge, n, s.opts.MaxRecordBytes)
		}
		putHeader(h, s.epoch, now, h[headerSize:headerSize+n])
		disk += int64(frameSize(n))
		off += headerSize + n
	}
	if disk > s.opts.MaxBytes {
		return nil, fmt.Errorf("%w: request of %d bytes exceeds the spool cap", ErrTooLarge, disk)
	}
	req := &appendReq{buf: b.buf, bytes: disk, lazy: b.lazy, done: make(chan struct{})}
	b.buf, b.n, b.spent = nil, 0, true

	select {
	case s.appendCh <- req:
		return req, nil
	case <-timeout:
		return nil, ErrTimeout
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.closing:
		return nil, ErrClosed
	}
}

// await waits for a queued request's outcome. ErrTimeout and ctx's error
// mean the outcome is unknown: the request may still be written.
func (s *Spool) await(ctx context.Context, req *appendReq, timeout <-chan time.Time) (ID, error) {
	select {
	case <-req.done: // known already: no timer or context may hide it
		return s.result(req)
	default:
	}
	select {
	case <-req.done:
		return s.result(req)
	case <-s.loopDone:
		return s.resultAfterLoop(req)
	case <-timeout:
		return ID{}, ErrTimeout
	case <-ctx.Done():
		return ID{}, ctx.Err()
	}
}

func (s *Spool) result(req *appendReq) (ID, error) {
	if req.res.err != nil {
		return ID{}, req.res.err
	}
	return ID{Epoch: s.epoch, Seq: req.res.first}, nil
}

// resultAfterLoop is the outcome of req once the commit goroutine has
// exited: what it did not answer it never wrote.
func (s *Spool) resultAfterLoop(req *appendReq) (ID, error) {
	select {
	case <-req.done:
		return s.result(req)
	default:
		return ID{}, ErrClosed
	}
}

// commitLoop owns the WAL: it group-commits appends, runs interval syncs
// and front truncation.
func (s *Spool) commitLoop() {
	defer s.wg.Done()
	defer close(s.loopDone)
	var tick <-chan time.Time
	if s.opts.Sync != SyncNever {
		// SyncAlways: for lazy appends no ordinary one covered
		// (intervalSync does nothing when nothing is dirty).
		t := time.NewTicker(s.opts.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	c := committer{s: s, gather: time.NewTimer(time.Hour)}
	c.gather.Stop()
	reqs := make([]*appendReq, 0, 256)
	for {
		select {
		case r := <-s.appendCh:
			reqs = append(reqs[:0], r)
			bytes := r.bytes
		more:
			for bytes < int64(s.opts.MaxCommitBytes) {
				select {
				case r := <-s.appendCh:
					reqs = append(reqs, r)
					bytes += r.bytes
				default:
					break more
				}
			}
			reqs = c.gatherMore(reqs, bytes)
			c.answered = len(reqs)
			c.commit(reqs)
			clear(reqs)
		case <-tick:
			c.intervalSync()
		case upTo := <-s.trunc:
			c.truncate(upTo)
		case r := <-s.syncReqs:
			c.syncRound(nil, r)
		case <-s.closing:
			for {
				select {
				case r := <-s.appendCh:
					r.finish(appendRes{err: ErrClosed})
				case r := <-s.syncReqs:
					r.run()
				default:
					return
				}
			}
		}
	}
}

// committer is the commit goroutine's private state.
type committer struct {
	s          *Spool
	batch      wal.Batch
	firsts     []uint64
	dirty      bool // written since the last interval sync
	newSegment bool // a segment was created since the last directory sync
	lastRetry  time.Time
	// truncPending: a front truncation up to it failed part way; reopen
	// finishes it and brings segs in line (truncGen odd until then).
	truncPending uint64
	// inTruncate: truncate runs; truncFailed: the last failure was a
	// truncation's, which a reopen that succeeds has finished, so that
	// the disk error it left is over (a write's, or a full disk's, lasts
	// until a write succeeds).
	inTruncate, truncFailed bool

	// Gathering (SyncAlways): writers answered by a commit tend to come
	// back at once with their next append, while the appends that queued
	// up during that commit's fsync wait for the next one. Committing
	// those alone splits the writers into two groups that take turns,
	// each waiting for the other's fsync before its own. So a commit that
	// starts with fewer appends than the previous one answered plus those
	// that queued up meanwhile waits for the rest, at most about one
	// fsync's time (gatherWait): by then a fresh fsync would have served
	// them. A lone writer never waits, nor does a commit of lazy appends
	// only (it is not fsynced).
	answered, queued int
	lastFsync        time.Duration
	gather           *time.Timer
}

// gatherWait is how long a commit waits for more appends at most, given
// the last fsync's duration: as long, up to a millisecond. Tests replace
// it.
var gatherWait = func(lastFsync time.Duration) time.Duration { return min(lastFsync, time.Millisecond) }

// gatherMore waits for appends to join reqs (see committer.answered),
// until as many are in as the last round had or about one fsync passed.
func (c *committer) gatherMore(reqs []*appendReq, bytes int64) []*appendReq {
	s := c.s
	want := c.answered + c.queued
	if s.opts.Sync != SyncAlways || len(reqs) >= want || c.lastFsync <= 0 || lazyOnly(reqs) {
		return reqs
	}
	s.st.gathers.Add(1)
	c.gather.Reset(gatherWait(c.lastFsync))
	defer c.gather.Stop()
	for len(reqs) < want && bytes < int64(s.opts.MaxCommitBytes) {
		select {
		case r := <-s.appendCh:
			reqs = append(reqs, r)
			bytes += r.bytes
		case <-c.gather.C:
			s.st.gatherTimeouts.Add(1)
			return reqs
		case <-s.closing:
			return reqs
		}
	}
	return reqs
}

// lazyOnly reports whether every append in reqs is lazy: their commit
// is not fsynced, so there is no fsync for others to share, and waiting
// for them would only delay the writes (a queue's pull waits for its
// attempt counts to be written).
func lazyOnly(reqs []*appendReq) bool {
	for _, r := range reqs {
		if !r.lazy {
			return false
		}
	}
	return true
}

func (c *committer) reply(reqs []*appendReq, err error) {
	c.queued = len(c.s.appendCh)
	for _, r := range reqs {
		r.finish(appendRes{err: err})
	}
}

func (c *committer) commit(reqs []*appendReq) {
	s := c.s
	if s.wl == nil && !c.reopen() {
		s.mu.Lock()
		err := s.diskErr
		s.mu.Unlock()
		c.reply(reqs, err)
		return
	}

	s.mu.Lock()
	floor := s.floorLocked()
	tailPos, last := s.tailPos, s.last
	cur := s.segs[len(s.segs)-1]
	s.mu.Unlock()

	// Caps, request by request: a rejected request spools nothing.
	accepted := reqs[:0]
	var pending int64
	refuse := func(r *appendReq, err error) {
		s.st.rejectedFull.Add(1)
		putBuf(r.buf)
		r.buf = nil
		r.finish(appendRes{err: err})
	}
	for _, r := range reqs {
		if over := tailPos + pending + r.bytes - floor - s.opts.MaxBytes; over > 0 {
			if s.opts.FullPolicy == Reject {
				refuse(r, ErrFull)
				continue
			}
			f, err := s.dropBefore(floor + over)
			if err != nil {
				refuse(r, fmt.Errorf("%w: no room made: %v", ErrFull, err))
				continue
			}
			floor = f
		}
		accepted = append(accepted, r)
		pending += r.bytes
	}
	if len(accepted) == 0 {
		return
	}

	// Assign sequences and mirror tidwall/wal's segment cycling (v1.2.1:
	// a new segment before the batch when the tail is over the size, and
	// after any entry that brings it to the size) so the spool knows the
	// segment boundaries and whether a directory entry needs an fsync.
	touched := []segment{cur}
	t := &touched[0]
	newSeg := func(first uint64) {
		prev := touched[len(touched)-1]
		touched = append(touched, segment{
			first: first, last: first - 1, base: prev.base + prev.size,
			path: filepath.Join(s.walDir, segmentName(first)),
		})
		t = &touched[len(touched)-1]
	}
	seq := last + 1
	if t.size > s.opts.SegmentBytes {
		newSeg(seq)
	}
	c.batch.Clear()
	c.firsts = c.firsts[:0]
	for _, r := range accepted {
		c.firsts = append(c.firsts, seq)
		for off := 0; off < len(r.buf); {
			n := headerSize + int(binary.LittleEndian.Uint32(r.buf[off+24:]))
			e := r.buf[off : off+n]
			sealHeader(e, seq)
			c.batch.Write(seq, e)
			if (seq-t.first)%markEvery == 0 {
				t.marks = append(t.marks[:len(t.marks):len(t.marks)], offMark{seq, t.size})
			}
			t.size += int64(uvarintLen(uint64(n)) + n)
			t.last = seq
			if t.size >= s.opts.SegmentBytes {
				newSeg(seq + 1)
			}
			seq++
			off += n
		}
		// c.batch holds copies now.
		putBuf(r.buf)
		r.buf = nil
	}
	created := len(touched) > 1
	// Under SyncAlways a commit of lazy appends only is not fsynced: the
	// next ordinary commit's fsync, or the timer, covers it.
	syncNow := s.opts.Sync == SyncAlways && !lazyOnly(accepted)

	err := s.wl.WriteBatch(&c.batch)
	if err == nil && syncNow {
		err = c.syncRound(c.fsync, nil)
		if err == nil && (created || c.newSegment) {
			err = syncDir(s.walDir)
		}
	}
	if err != nil {
		c.reply(accepted, c.fail(err))
		return
	}
	if syncNow {
		c.dirty, c.newSegment = false, false
	} else if s.opts.Sync != SyncNever {
		c.dirty = true
		c.newSegment = c.newSegment || created
	}

	s.mu.Lock()
	s.diskErr = nil
	s.segs[len(s.segs)-1] = touched[0]
	s.segs = append(s.segs, touched[1:]...)
	s.last = seq - 1
	end := touched[len(touched)-1]
	s.tailPos = end.base + end.size
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
	if created {
		// tidwall/wal keeps the previous tail cached after a cycle; the
		// spool never reads through tidwall, so free it.
		_ = s.wl.ClearCache()
	}
	s.st.commits.Add(1)
	s.st.records.Add(uint64(seq - 1 - last))
	s.st.bytes.Add(uint64(pending))
	// Counted before anyone is answered: an answered writer's next
	// append is not one that queued up meanwhile.
	c.queued = len(s.appendCh)
	for i, r := range accepted {
		r.finish(appendRes{first: c.firsts[i]})
	}
}

// syncReq is an fsync another spool (SyncVia) asks this one's commit
// goroutine to run in its next round.
type syncReq struct {
	fn   func() error
	err  error
	done chan struct{}
}

func (r *syncReq) run() {
	r.err = r.fn()
	close(r.done)
}

// syncRound runs own (nil = none), first (nil = none) and every fsync
// other spools asked for meanwhile, concurrently (so that one journal
// commit of the file system tends to cover them all), and returns own's
// error once all are done: one round, as one fsync of a single-threaded
// server covers everything its loop took in.
func (c *committer) syncRound(own func() error, first *syncReq) error {
	var reqs []*syncReq
	if first != nil {
		reqs = append(reqs, first)
	}
more:
	for {
		select {
		case r := <-c.s.syncReqs:
			reqs = append(reqs, r)
		default:
			break more
		}
	}
	if own == nil && len(reqs) > 0 {
		r0 := reqs[0]
		own, reqs = func() error { r0.run(); return nil }, reqs[1:]
	}
	var wg sync.WaitGroup
	for _, r := range reqs {
		wg.Add(1)
		go func() { defer wg.Done(); r.run() }()
	}
	var err error
	if own != nil {
		err = own()
	}
	wg.Wait()
	return err
}

// shareSync runs fn in the next round of s's commit goroutine, or itself
// when s is closed.
func (s *Spool) shareSync(fn func() error) error {
	r := &syncReq{fn: fn, done: make(chan struct{})}
	select {
	case s.syncReqs <- r:
	case <-s.loopDone:
		return fn()
	}
	select {
	case <-r.done:
		return r.err
	case <-s.loopDone:
		select {
		case <-r.done: // the loop ran it on its way out
			return r.err
		default: // sent after the loop's last look: never taken
			return fn()
		}
	}
}

func (c *committer) fsync() error {
	t0 := time.Now()
	var err error
	if via := c.s.opts.SyncVia; via != nil {
		wl := c.s.wl
		err = via.shareSync(func() error { return walSync(wl) })
	} else {
		err = walSync(c.s.wl)
	}
	d := time.Since(t0)
	c.lastFsync = d
	c.s.st.fsyncs.Add(1)
	c.s.st.fsyncNanos.Add(uint64(d))
	if c.s.opts.OnFsync != nil {
		c.s.opts.OnFsync(d)
	}
	return err
}

// walSync fsyncs the WAL. Tests replace it to inject the failures a real
// disk gives rarely and a test file system never (EIO).
var walSync = (*wal.Log).Sync

func (c *committer) intervalSync() {
	if c.s.wl == nil {
		// Reopening is not left to appends alone: an idle spool would
		// stay failed, a truncation that failed part way running.
		c.reopen()
		return
	}
	if !c.dirty {
		return
	}
	err := c.fsync()
	if err == nil && c.newSegment {
		err = syncDir(c.s.walDir)
	}
	if err != nil {
		c.fail(err)
		return
	}
	c.dirty, c.newSegment = false, false
}

// fail handles a failed write or fsync. The tidwall/wal handle is not
// trusted any more: close it, cut the files back to the last published
// record (removing segments the failed batch created), and reopen. A failed
// fsync is never retried: the batch it covered is failed.
func (c *committer) fail(err error) error {
	s := c.s
	err = classify(err)
	s.st.writeErrors.Add(1)
	c.truncFailed = c.inTruncate && !errors.Is(err, ErrDiskFull) // a full disk stays full
	s.log.Error("spool write failed; cutting back to the last durable record", "err", err)
	_ = s.wl.Close()
	s.wl = nil
	s.mu.Lock()
	s.diskErr = err
	s.mu.Unlock()
	c.lastRetry = time.Time{}
	c.reopen()
	return err
}

// reopen cuts the WAL back to the published state and reopens it. It runs
// at most every 500 ms while the disk keeps failing.
func (c *committer) reopen() bool {
	s := c.s
	if time.Since(c.lastRetry) < 500*time.Millisecond {
		return false
	}
	c.lastRetry = time.Now()
	s.mu.Lock()
	tail := s.segs[len(s.segs)-1]
	s.mu.Unlock()
	err := func() error {
		w, err := listWAL(s.walDir)
		if err != nil {
			return err
		}
		for _, f := range w.segs {
			if f.first > tail.first {
				if err := os.Remove(f.path); err != nil {
					return classify(err)
				}
			}
		}
		for _, t := range w.temps {
			os.Remove(t)
		}
		if err := cutFile(tail.path, tail.size); err != nil {
			return err
		}
		if err := syncDir(s.walDir); err != nil {
			return err
		}
		if err := s.openWAL(); err != nil {
			return err
		}
		if li, _ := s.wl.LastIndex(); li != tail.last {
			s.wl.Close()
			s.wl = nil
			return fmt.Errorf("reopen: wal ends at %d, expected %d: %w", li, tail.last, ErrCorrupt)
		}
		return nil
	}()
	if err != nil {
		s.log.Warn("spool still failing", "err", err)
		return false
	}
	c.dirty, c.newSegment = false, false
	if c.truncPending != 0 {
		// Opening the WAL finished the truncation that failed part way.
		s.mu.Lock()
		s.frontTruncatedLocked(c.truncPending)
		s.truncGen++
		s.mu.Unlock()
		c.truncPending = 0
	}
	if c.truncFailed {
		s.mu.Lock()
		s.diskErr = nil
		s.mu.Unlock()
		c.truncFailed = false
	}
	s.log.Info("spool reopened after a write failure")
	return true
}

// dropBefore advances every cursor whose position is below target past the
// records up to target (policy drop_oldest). It returns the new floor, and
// an error, dropping nothing, when the records cannot be located for a
// moment or an open cursor pins them (CursorOptions.Pin).
func (s *Spool) dropBefore(target int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq, pos, err := s.dropPointLocked(target)
	if err != nil {
		// Not damage (no file descriptor free, EIO): the records are
		// intact. The append is refused this once.
		s.log.Warn("drop_oldest: cannot locate records to drop; append refused", "err", err)
		return s.floorLocked(), err
	}
	for _, cur := range s.cursors {
		if cur.inUse && cur.pin != nil && cur.ackPos.Load() < pos && cur.pin(cur.acked+1) {
			return s.floorLocked(), fmt.Errorf("cursor %s has not acknowledged the records to drop", cur.name)
		}
	}
	for _, cur := range s.cursors {
		if cur.ackPos.Load() < pos {
			cur.skipLocked(seq, pos, true)
		}
	}
	return s.floorLocked(), nil
}

// dropPointLocked is where a drop up to logical position target ends: the
// first record ending at or after it; or, when the segment holding target
// cannot be read for damage (framing, a file cut short or gone), the first
// record start the segment's sparse index knows at or after target, else
// the segment's end: what lies between goes unparsed. Other errors (no file
// descriptor free, EIO, a truncation rewriting the segment) are returned.
// s.mu held.
func (s *Spool) dropPointLocked(target int64) (uint64, int64, error) {
	seq, pos, err := s.locate(target)
	if err == nil || !s.damagedLocked(err) {
		return seq, pos, err
	}
	seg := s.segs[s.segIndexAt(target)]
	seq, pos = seg.last, seg.base+seg.size
	for _, m := range seg.marks {
		if at := seg.base + m.off; at >= target && at < pos {
			seq, pos = m.seq-1, at
			break
		}
	}
	s.log.Error("spool segment unreadable at a drop; dropping past the damage unparsed",
		"segment", filepath.Base(seg.path), "to_seq", seq, "err", err)
	return seq, pos, nil
}

// frontTruncatedLocked brings segs in line with the files after a front
// truncation up to upTo, finished or failed part way: the segments before
// upTo's whose files are gone leave the list, and upTo's segment, if its
// file was rewritten to start there (under that sequence's name), is
// described by the new file. s.mu held.
func (s *Spool) frontTruncatedLocked(upTo uint64) {
	i := 0
	for i < len(s.segs)-1 && s.segs[i].last < upTo {
		if _, err := os.Stat(s.segs[i].path); !errors.Is(err, os.ErrNotExist) {
			break // still there: a truncation that failed before removing it
		}
		i++
	}
	if seg := &s.segs[i]; seg.first < upTo && seg.last >= upTo {
		if _, err := os.Stat(seg.path); errors.Is(err, os.ErrNotExist) {
			// The segment holding upTo now starts there, in a file of that name.
			path := filepath.Join(s.walDir, segmentName(upTo))
			if fi, err := os.Stat(path); err == nil {
				cut := seg.size - fi.Size()
				marks := seg.marks[:0:0]
				for _, m := range seg.marks {
					if m.seq >= upTo {
						marks = append(marks, offMark{m.seq, m.off - cut})
					}
				}
				*seg = segment{first: upTo, last: seg.last, base: seg.base + cut, size: fi.Size(), path: path, marks: marks}
			} else {
				s.log.Error("spool truncation: rewritten segment missing", "err", err)
			}
		}
	}
	s.segs = append(s.segs[:0:0], s.segs[i:]...)
}

// truncate removes whole segments below the one starting at upTo. It never
// touches the tail segment: readers hold it open.
func (c *committer) truncate(upTo uint64) {
	s := c.s
	if s.wl == nil && !c.reopen() {
		return
	}
	c.inTruncate = true
	defer func() { c.inTruncate = false }()
	// Two flushes may ask for the same truncation before it ran: the
	// second finds it done.
	s.mu.Lock()
	done := upTo <= s.segs[0].first
	if !done {
		s.truncGen++ // odd: running
	}
	s.mu.Unlock()
	if done {
		return
	}
	t0 := time.Now()
	if err := s.wl.TruncateFront(upTo); err != nil {
		// tidwall marks the handle corrupt after a partial truncation;
		// recover the directory state the usual way. Some files may be
		// gone and the rest of upTo's segment be in its START file until
		// the WAL is opened again (which finishes the truncation): the
		// truncation counts as running until reopen brings segs in line.
		s.log.Error("spool truncation failed", "err", err)
		c.truncPending = upTo
		c.fail(err)
		return
	}
	// The files it removed are gone whatever follows (a failed directory
	// fsync): segs says so at once, or readers would take them for damage.
	s.mu.Lock()
	s.frontTruncatedLocked(upTo)
	s.truncGen++
	s.mu.Unlock()
	if err := syncDir(s.walDir); err != nil {
		c.fail(err)
		return
	}
	s.st.truncations.Add(1)
	s.st.truncateNanos.Add(uint64(time.Since(t0)))
}
