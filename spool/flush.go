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
	type item struct {
		c     *Cursor
		data  []byte
		acked uint64
	}
	var items []item
	s.mu.Lock()
	for _, c := range cursors {
		if c.dirty {
			items = append(items, item{c, c.encodeLocked(), c.acked})
			c.dirty = false
		}
	}
	s.mu.Unlock()
	if len(items) == 0 {
		return nil
	}
	var errs []error
	var done []item
	for _, it := range items {
		name := s.cursorPath(it.c.name)
		if err := writeFileSync(name+".tmp", it.data); err != nil {
			errs = append(errs, fmt.Errorf("cursor %s: %w", it.c.name, err))
			continue
		}
		if err := os.Rename(name+".tmp", name); err != nil {
			errs = append(errs, fmt.Errorf("cursor %s: %w", it.c.name, classify(err)))
			continue
		}
		done = append(done, it)
	}
	if err := syncDir(filepath.Join(s.dir, "cursors")); err != nil {
		errs = append(errs, err)
		done = nil
	}
	s.mu.Lock()
	for _, it := range items {
		ok := false
		for _, d := range done {
			ok = ok || d.c == it.c
		}
		if ok {
			it.c.persisted = max(it.c.persisted, it.acked)
		} else {
			it.c.dirty = true
		}
	}
	s.mu.Unlock()
	return errors.Join(errs...)
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
