package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Read returns up to maxRecords records (and about maxBytes of payload,
// at least one record) after the cursor's read position, blocking until at
// least one durable record is there or ctx is done. It never returns a
// record that is not durable under the sync policy. Damaged framing is
// skipped (its records noted lost); an error that is not damage (a segment
// that cannot be opened for want of file descriptors, EIO) is returned
// with the cursor where it was, for the caller to retry.
func (c *Cursor) Read(ctx context.Context, maxRecords, maxBytes int) ([]Record, error) {
	s := c.s
	if maxRecords <= 0 {
		maxRecords = 1
	}
	for {
		s.mu.Lock()
		if s.closed.Load() {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		if c.next <= s.last && c.nextPos < s.tailPos {
			gen, pos, tg := c.gen, c.nextPos, s.truncGen
			i := s.segIndexAt(pos)
			seg := s.segs[i]
			if pos < seg.base { // below the front after a truncation
				pos = seg.base
			}
			s.mu.Unlock()

			recs, marks, end, err := c.readSegment(seg, pos, maxRecords, maxBytes)

			s.mu.Lock()
			if c.gen != gen {
				s.mu.Unlock()
				continue
			}
			if errors.Is(err, os.ErrNotExist) && s.racedLocked(tg, seg.path) {
				// A front truncation removed or rewrote the file
				// meanwhile: not damage. Read on from the new front.
				running := s.truncGen%2 == 1
				s.mu.Unlock()
				if running {
					select {
					case <-ctx.Done():
						return nil, ctx.Err()
					case <-time.After(time.Millisecond):
					}
				}
				continue
			}
			if err != nil && !damaged(err) && !errors.Is(err, os.ErrNotExist) {
				// Not damage (too many open files, EIO): the records may
				// read fine later. Nothing moves; the caller retries.
				s.st.readErrors.Add(1)
				s.mu.Unlock()
				return nil, err
			}
			if err != nil {
				// Framing damaged after Open, or the segment's file
				// gone: skip the rest of the segment, count it, note its
				// records lost (lost.go), keep serving.
				_, end = s.skipLocked(c.name, c.next, pos, seg, err)
			}
			c.nextPos = end
			if n := len(recs); n > 0 {
				c.next = recs[n-1].ID.Seq + 1
				c.inflight = append(c.inflight, marks...)
				s.mu.Unlock()
				return recs, nil
			}
			// Nothing in this segment past pos: move on (a quarantined
			// gap, or the end of a closed segment).
			if i+1 < len(s.segs) && c.nextPos >= seg.base+seg.size {
				c.next = max(c.next, s.segs[i+1].first)
			}
			s.mu.Unlock()
			continue
		}
		ch := s.notify
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// racedLocked says whether a segment file found gone, at path, was
// removed or rewritten by a front truncation that began since truncGen
// read tg, or runs now, or is no longer the spool's: not damage. s.mu held.
func (s *Spool) racedLocked(tg uint64, path string) bool {
	if s.truncGen != tg || s.truncGen%2 == 1 {
		return true
	}
	for _, seg := range s.segs {
		if seg.path == path {
			return false
		}
	}
	return true
}

// damagedLocked says whether err, from reading a segment file with s.mu
// held since before the read, is damage: framing that does not parse, a
// file cut short, or a file gone while no truncation runs. s.mu held.
func (s *Spool) damagedLocked(err error) bool {
	return damaged(err) || errors.Is(err, os.ErrNotExist) && s.truncGen%2 == 0
}

// readSegment parses records of one segment from logical position pos up
// to the segment's published (durable) size.
func (c *Cursor) readSegment(seg segment, pos int64, maxRecords, maxBytes int) ([]Record, []mark, int64, error) {
	if pos-seg.base >= seg.size {
		return nil, nil, pos, nil
	}
	if c.fpath != seg.path {
		c.closeFile()
		f, err := os.Open(seg.path)
		if err != nil {
			return nil, nil, pos, err
		}
		c.f, c.fpath = f, seg.path
	}
	var scratch *[]byte
	if c.reuse {
		scratch = &c.scratch
	}
	return readFrames(c.f, seg, pos, maxRecords, maxBytes, scratch)
}

// readFrames parses records of seg (open as f) from logical position pos.
// With scratch, it reads into *scratch (grown as needed, kept for the next
// call), else into a new buffer the records own.
func readFrames(f *os.File, seg segment, pos int64, maxRecords, maxBytes int, scratch *[]byte) ([]Record, []mark, int64, error) {
	off := pos - seg.base
	avail := seg.size - off
	if avail <= 0 {
		return nil, nil, pos, nil
	}
	want := int64(maxBytes) + 64<<10
	for {
		n := min(avail, want)
		var buf []byte
		switch {
		case scratch == nil || n > int64(maxBytes)+64<<10:
			buf = make([]byte, n) // an outsized frame is not kept
		case int64(cap(*scratch)) >= n:
			buf = (*scratch)[:n]
		default:
			*scratch = make([]byte, n)
			buf = *scratch
		}
		if _, err := f.ReadAt(buf, off); err != nil {
			return nil, nil, pos, fmt.Errorf("read: %w", err)
		}
		var recs []Record
		var marks []mark
		p, payload := 0, 0
		for len(recs) < maxRecords && (payload < maxBytes || len(recs) == 0) {
			e, fn, st := nextFrame(buf[p:])
			if st == frameIncomplete {
				break
			}
			if st == frameBad {
				if len(recs) > 0 {
					break // hand out what is good; the next Read reports
				}
				return nil, nil, pos, ErrCorrupt
			}
			p += fn
			recs = append(recs, Record{
				ID:      ID{Epoch: e.epoch, Seq: e.seq},
				Time:    time.Unix(0, e.time),
				Data:    e.payload,
				Corrupt: e.corrupt,
			})
			marks = append(marks, mark{seq: e.seq, end: pos + int64(p)})
			payload += len(e.payload)
		}
		if len(recs) > 0 || n == avail {
			if len(recs) == 0 && n == avail {
				// Published bytes that do not parse as a frame.
				return nil, nil, pos, ErrCorrupt
			}
			if scratch == nil && p < len(buf)/2 {
				// The records hold their buffer alive: a few small ones
				// (maxRecords reached) must not keep a whole read's
				// buffer, up to maxBytes, behind them.
				recs = compact(recs, buf[:p])
			}
			return recs, marks, pos + int64(p), nil
		}
		// One frame larger than the buffer: read exactly that frame.
		size, vn := binary.Uvarint(buf)
		if vn <= 0 || size > maxEntry {
			return nil, nil, pos, ErrCorrupt
		}
		want = int64(vn) + int64(size)
	}
}

// compact moves the records' payloads, which all lie in used, into a
// buffer of used's size.
func compact(recs []Record, used []byte) []Record {
	nb := make([]byte, len(used))
	copy(nb, used)
	base := cap(used) // a payload's offset in used is cap(used) - cap(payload)
	for i := range recs {
		d := recs[i].Data
		off := base - cap(d)
		recs[i].Data = nb[off : off+len(d) : off+len(d)]
	}
	return recs
}

// ReadFrom returns up to maxRecords durable records (about maxBytes of
// payload, at least one) with sequence from or above, without a cursor:
// nothing is acknowledged or held. Records truncated meanwhile are skipped,
// so the first one returned may be above from; none when from is past the
// last durable record. It is how a consumer re-reads a range it let go of.
// A truncation under way is waited for a second at most; an error that is
// not damage is returned, for the caller to retry.
func (s *Spool) ReadFrom(from uint64, maxRecords, maxBytes int) ([]Record, error) {
	if maxRecords <= 0 {
		maxRecords = 1
	}
	// waitTruncation waits a moment for a truncation that removed a file
	// to finish, a second at most in all: past that it says to give up.
	var waitUntil time.Time
	waitTruncation := func() bool {
		if waitUntil.IsZero() {
			waitUntil = time.Now().Add(time.Second)
		}
		if time.Now().After(waitUntil) {
			return false
		}
		time.Sleep(time.Millisecond)
		return true
	}
	for {
		s.mu.Lock()
		if s.closed.Load() {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		if from > s.last {
			s.mu.Unlock()
			return nil, nil
		}
		from = max(from, s.segs[0].first, 1)
		pos, err := s.posOf(from - 1)
		if errors.Is(err, os.ErrNotExist) && s.truncGen%2 == 1 {
			// A truncation removed the file and segs does not say so
			// yet: start again at the new front once it is done.
			s.mu.Unlock()
			if !waitTruncation() {
				return nil, err
			}
			continue
		}
		if err != nil && s.damagedLocked(err) {
			// Damaged framing before from in its segment: from cannot
			// be found, nor what follows up to a resume point.
			seg := s.segs[sort.Search(len(s.segs), func(i int) bool { return s.segs[i].last >= from })]
			from, _ = s.skipLocked("", from, seg.base-1, seg, err)
			s.mu.Unlock()
			continue
		}
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		i := s.segIndexAt(pos)
		seg := s.segs[i]
		pos = max(pos, seg.base)
		tg := s.truncGen
		s.mu.Unlock()

		f, err := os.Open(seg.path)
		if errors.Is(err, os.ErrNotExist) {
			s.mu.Lock()
			if s.racedLocked(tg, seg.path) {
				// Truncated meanwhile: start again at the new front,
				// once the truncation that runs is done.
				running := s.truncGen%2 == 1
				s.mu.Unlock()
				if running && !waitTruncation() {
					return nil, err
				}
				continue
			}
			from, _ = s.skipLocked("", from, pos, seg, err) // the file is gone: damage
			s.mu.Unlock()
			continue
		}
		if err != nil {
			return nil, err
		}
		recs, _, _, err := readFrames(f, seg, pos, maxRecords, maxBytes, nil)
		f.Close()
		if damaged(err) {
			s.mu.Lock()
			from, _ = s.skipLocked("", from, pos, seg, err)
			s.mu.Unlock()
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(recs) > 0 {
			return recs, nil
		}
		// The end of a segment (or a quarantined gap): go on with the next.
		s.mu.Lock()
		next := uint64(0)
		if i+1 < len(s.segs) {
			next = s.segs[i+1].first
		}
		s.mu.Unlock()
		if next <= from {
			return nil, nil
		}
		from = next
	}
}

// damaged says whether a read error is damage to published bytes: framing
// that does not parse, or a file shorter than what was written to it.
// Other errors (a file that cannot be opened, EIO) are returned.
func damaged(err error) bool {
	return errors.Is(err, ErrCorrupt) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// skipLocked answers damage from record from (at logical position pos,
// or before it) on in seg, as the reader saw it, for a cursor's read and
// for ReadFrom (cursor ""): what lies up to the next resume point, or the
// segment's end, is counted, logged and noted lost (lost.go) before
// anything reads past it, and reading goes on there: the record and the
// position it returns. s.mu held (the note's write under it: damage is
// rare).
func (s *Spool) skipLocked(cursor string, from uint64, pos int64, seg segment, err error) (uint64, int64) {
	next, at := s.skipToLocked(from, pos, seg)
	s.st.corruptions.Add(1)
	s.log.Error("spool segment unreadable past this point; skipping what cannot be read, its records lost",
		"cursor", cursor, "segment", filepath.Base(seg.path), "first_lost", from, "last_lost", next-1, "err", err)
	s.addLost(from, next-1, s.epoch)
	s.addResumeLocked(next, at)
	return next, at
}
