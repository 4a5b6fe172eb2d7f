package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// flushLoop persists acknowledged cursor positions and, when every cursor
// has passed enough whole segments, asks the commit goroutine to truncate
// the front.
func (s *Spool) flushLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.CursorSyncInterval)
	defer t.Stop()
	var lastErr time.Time
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
			if err := s.Flush(); err != nil && time.Since(lastErr) > 10*time.Second {
				lastErr = time.Now()
				s.log.Error("spool: persisting cursors failed (will retry)", "err", err)
			}
		}
	}
}

// Flush persists every cursor position acknowledged so far and schedules a
// front truncation when one is due.
func (s *Spool) Flush() error {
	s.mu.Lock()
	cursors := make([]*Cursor, 0, len(s.cursors))
	for _, c := range s.cursors {
		cursors = append(cursors, c)
	}
	s.mu.Unlock()
	if err := s.persistCursors(cursors); err != nil {
		return err
	}
	s.scheduleTruncate()
	return nil
}

func (s *Spool) persistCursors(cursors []*Cursor) error {
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	if s.persistDone {
		return ErrClosed
	}
	type item struct {
		c     *Cursor
		st    cursorState
		whole bool // written as a new file: durable with the directory fsync
	}
	var items []item
	s.mu.Lock()
	for _, c := range cursors {
		if c.dirty && s.cursors[c.name] == c { // not removed meanwhile
			items = append(items, item{c: c, st: c.stateLocked()})
			c.dirty = false
		}
	}
	s.mu.Unlock()
	if len(items) == 0 {
		return nil
	}
	var errs []error
	ok := make([]bool, len(items))
	renamed := false
	for i := range items {
		it := &items[i]
		var err error
		it.whole, err = it.c.persist(s.cursorPath(it.c.name), it.st)
		if err != nil {
			errs = append(errs, fmt.Errorf("cursor %s: %w", it.c.name, err))
			continue
		}
		ok[i], renamed = true, renamed || it.whole
	}
	if renamed {
		if err := syncDir(filepath.Join(s.dir, "cursors")); err != nil {
			errs = append(errs, err)
			for i, it := range items {
				if it.whole { // not durable: written whole again next time
					ok[i] = false
					it.c.closePersist()
				}
			}
		}
	}
	s.mu.Lock()
	for i, it := range items {
		if ok[i] {
			it.c.persisted = max(it.c.persisted, it.st.acked)
		} else {
			it.c.dirty = true
		}
	}
	s.mu.Unlock()
	return errors.Join(errs...)
}

// persist makes st the cursor's durable state at path (s.persistMu held).
// With its file open from an earlier persist, it writes the slot that
// does not hold the last durable state and fdatasyncs; otherwise, or after
// a failure, it writes a whole new file (whole: durable once the caller
// has fsynced the directory).
func (c *Cursor) persist(path string, st cursorState) (whole bool, err error) {
	gen := c.pgen + 1
	if c.pf != nil {
		slot := 1 - c.pslot
		_, err = c.pf.WriteAt(encodeSlot(gen, st), int64(slot*cursorSlot))
		if err == nil {
			err = fdatasync(c.pf)
		}
		if err != nil {
			// What the slot holds now is unknown, and so is what the page
			// cache will write of it after a failed fsync: start over with
			// a whole file.
			c.closePersist()
			return false, classify(err)
		}
		c.pslot, c.pgen = slot, gen
		return false, nil
	}
	if err := replaceFile(path, cursorImage(gen, st)); err != nil {
		return true, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		// Durable all the same (after the directory fsync); the next
		// persist writes a whole file again.
		return true, nil
	}
	c.pf, c.pslot, c.pgen = f, 0, gen
	return true, nil
}

// closePersist closes the file persist writes in place (s.persistMu held).
func (c *Cursor) closePersist() {
	if c.pf != nil {
		c.pf.Close()
		c.pf = nil
	}
}

// scheduleTruncate asks for a front truncation when at least
// TruncateSegments whole segments lie below every cursor's persisted
// position. tidwall/wal's TruncateFront(upTo) deletes the segments before
// the one holding upTo and rewrites that one from upTo on (with an fsync,
// under the lock appends need), so upTo is the last record of the last
// passed segment: the rewrite is one record, not a segment. The tail
// segment is never rewritten.
func (s *Spool) scheduleTruncate() {
	s.mu.Lock()
	floor := s.last
	for _, c := range s.cursors {
		floor = min(floor, c.persisted)
	}
	k := 0
	for k < len(s.segs)-1 && s.segs[k].last <= floor {
		k++
	}
	var upTo uint64
	if k >= s.opts.TruncateSegments {
		switch seg := s.segs[k-1]; {
		case seg.last >= seg.first:
			upTo = seg.last
		case k < len(s.segs)-1: // an empty segment (a quarantine emptied it)
			upTo = s.segs[k].first
		}
		if upTo <= s.segs[0].first {
			upTo = 0 // only the one-record rest of the last truncation is passed
		}
	}
	s.mu.Unlock()
	if upTo > 0 {
		select {
		case s.trunc <- upTo:
		default:
		}
	}
}
