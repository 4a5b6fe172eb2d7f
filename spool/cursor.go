package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Record is one record read through a cursor. Data shares one buffer with
// the other records of the same Read and stays valid as long as the caller
// keeps it.
type Record struct {
	ID   ID
	Time time.Time // when it was appended
	Data []byte
	// Corrupt is set when the payload failed its CRC: Data is not to be
	// trusted, and the consumer should dead-letter the record by ID.
	Corrupt bool
}

// Seq is the record's sequence.
func (r Record) Seq() uint64 { return r.ID.Seq }

// Range is an inclusive range of sequences.
type Range struct{ From, To uint64 }

// Backlog is what a cursor has not acknowledged yet.
type Backlog struct {
	Records uint64
	Bytes   int64
	Oldest  time.Time // append time of the oldest record; zero when empty
}

// CursorOptions configure a cursor that does not exist yet.
type CursorOptions struct {
	// FromOldest starts a new cursor at the oldest record instead of the
	// tail.
	FromOldest bool
	// Pin, when set: while the cursor is open, a drop of FullPolicy
	// DropOldest that would take records it has not acknowledged, from
	// next (its acknowledged position + 1) on, is refused with ErrFull
	// (dropping nothing) whenever Pin(next) reports true: the reader must
	// be done with those records first (read, and what it made of them
	// durable). For a reader that keeps up with the tail and must not miss
	// some records (the agent's copier of Idempotency-Keys: true while a
	// keyed record may lie there). Called with the spool's lock held: it
	// must not call into the spool.
	Pin func(next uint64) bool
}

// Cursor is a named, persistent read position. One consumer uses it at a
// time (Read is not for concurrent use); Ack, Skip and Backlog may be
// called from any goroutine.
type Cursor struct {
	s    *Spool
	name string

	ackPos atomic.Int64 // logical position after the acknowledged record

	// guarded by s.mu
	acked     uint64
	persisted uint64
	dirty     bool
	// dropped: the drops, oldest first, each exact, but for a first one
	// stored reversed (From > To): older drops merged, with what lay
	// between them (DropForgotten). Persisted in the cursor file as is.
	dropped      []Range
	droppedTotal atomic.Uint64 // written under s.mu; read without it (every queue ack asks)
	// born: the records up to here were in the spool before this cursor
	// was created (0 when created at the oldest record, or unknown).
	born     uint64
	inUse    bool
	pin      func(next uint64) bool // CursorOptions.Pin of the open in use
	reset    bool                   // the file was missing or torn at open
	next     uint64
	nextPos  int64
	gen      uint64 // bumped when Skip or Rewind moves the read position
	inflight []mark // records read and not acknowledged, ascending

	// persisting, guarded by s.persistMu: the file open for in-place
	// writes of its slots (nil: the next persist writes a whole file), the
	// slot holding the last durable state, and its generation.
	pf    *os.File
	pslot int
	pgen  uint64

	// reader state, consumer goroutine only
	f       *os.File
	fpath   string
	reuse   bool   // ReuseBuffer: records alias scratch until the next Read
	scratch []byte // the read buffer Read reuses when reuse is set
}

// ReuseBuffer makes Read read into one buffer it keeps and reuses: the
// Data of the records a Read returns stay valid only until the next Read on
// this cursor. For consumers that copy what they keep (it saves a buffer
// of about maxBytes per Read, and its zeroing).
func (c *Cursor) ReuseBuffer() { c.reuse = true }

type mark struct {
	seq uint64
	end int64
}

const maxDroppedRanges = 16

var cursorName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

func (s *Spool) cursorPath(name string) string {
	return filepath.Join(s.dir, "cursors", name+".cursor")
}

// Cursor opens the named cursor, creating it (persisted at once) when it
// does not exist. A cursor is open once at a time; Release it to hand it
// over.
func (s *Spool) Cursor(name string, o CursorOptions) (*Cursor, error) {
	if !cursorName.MatchString(name) {
		return nil, fmt.Errorf("spool: invalid cursor name %q", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if c, ok := s.cursors[name]; ok {
		if c.inUse {
			return nil, fmt.Errorf("%w: %s", ErrCursorOpen, name)
		}
		c.inUse, c.pin = true, o.Pin
		return c, nil
	}
	c := &Cursor{s: s, name: name, inUse: true, pin: o.Pin}
	if o.FromOldest {
		c.acked = s.segs[0].first - 1
		c.ackPos.Store(s.segs[0].base)
	} else {
		c.acked, c.born = s.last, s.last
		c.ackPos.Store(s.tailPos)
	}
	c.next, c.nextPos = c.acked+1, c.ackPos.Load()
	if err := atomicWrite(s.cursorPath(name), cursorImage(1, c.stateLocked())); err != nil {
		return nil, fmt.Errorf("spool: create cursor: %w", err)
	}
	c.persisted, c.pgen = c.acked, 1
	s.registry = append(s.registry, name)
	if err := s.writeMeta(); err != nil {
		return nil, fmt.Errorf("spool: register cursor: %w", err)
	}
	s.cursors[name] = c
	return c, nil
}

// Name is the cursor's name.
func (c *Cursor) Name() string { return c.name }

// Release hands the cursor back; it stays in the spool (and keeps holding
// its records) until RemoveCursor.
func (c *Cursor) Release() {
	c.s.mu.Lock()
	c.inUse = false
	// The next user starts at the oldest unacknowledged record: what this
	// one read but did not acknowledge is delivered again.
	c.next, c.nextPos = c.acked+1, c.ackPos.Load()
	c.inflight = c.inflight[:0]
	c.gen++
	c.s.mu.Unlock()
	c.closeFile()
}

func (c *Cursor) closeFile() {
	if c.f != nil {
		c.f.Close()
		c.f, c.fpath = nil, ""
	}
}

// RemoveCursor deletes a cursor that is not open. Its records become
// eligible for truncation.
func (s *Spool) RemoveCursor(name string) error {
	// persistMu first (as persistCursors takes it): a persist that took
	// this cursor before it was removed would write its file back.
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cursors[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoCursor, name)
	}
	if c.inUse {
		return fmt.Errorf("%w: %s", ErrCursorOpen, name)
	}
	c.closePersist()
	if err := os.Remove(s.cursorPath(name)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("spool: remove cursor: %w", err)
	}
	delete(s.cursors, name)
	s.registry = slices.DeleteFunc(s.registry, func(n string) bool { return n == name })
	if err := s.writeMeta(); err != nil {
		return fmt.Errorf("spool: remove cursor: %w", err)
	}
	return syncDir(filepath.Join(s.dir, "cursors"))
}

// CursorInfo describes one cursor.
type CursorInfo struct {
	Name      string
	InUse     bool   // opened by a consumer since Open; false = orphan
	Acked     uint64 // last acknowledged sequence
	Persisted uint64 // last acknowledged sequence on disk
	Reset     bool   // file was missing or torn at open: restarted at the oldest record
	Dropped   uint64 // records skipped by drop policies since Open
	Backlog   Backlog
}

// Cursors lists every cursor, open or not, sorted by name.
func (s *Spool) Cursors() []CursorInfo {
	s.mu.Lock()
	names := make([]string, 0, len(s.cursors))
	for n := range s.cursors {
		names = append(names, n)
	}
	s.mu.Unlock()
	slices.Sort(names)
	out := make([]CursorInfo, 0, len(names))
	for _, n := range names {
		s.mu.Lock()
		c, ok := s.cursors[n]
		if !ok {
			s.mu.Unlock()
			continue
		}
		info := CursorInfo{
			Name: n, InUse: c.inUse, Acked: c.acked, Persisted: c.persisted, Reset: c.reset,
			Dropped: c.droppedTotal.Load(),
		}
		s.mu.Unlock()
		info.Backlog = c.Backlog()
		out = append(out, info)
	}
	return out
}

// Ack acknowledges every record up to and including seq. It must have been
// returned by Read. Positions are persisted in the background (and by
// Flush and Close).
func (c *Cursor) Ack(seq uint64) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq <= c.acked {
		return nil
	}
	i, found := slices.BinarySearchFunc(c.inflight, seq, func(m mark, t uint64) int {
		switch {
		case m.seq < t:
			return -1
		case m.seq > t:
			return 1
		}
		return 0
	})
	if !found {
		if i == 0 {
			return fmt.Errorf("spool: ack %d beyond what cursor %s has read", seq, c.name)
		}
		i-- // a sequence inside a gap: acknowledge up to the record before it
	}
	c.acked = c.inflight[i].seq
	c.ackPos.Store(c.inflight[i].end)
	c.inflight = append(c.inflight[:0], c.inflight[i+1:]...)
	c.dirty = true
	return nil
}

// Rewind moves the read position back to the oldest unacknowledged record:
// the next Read returns everything not acknowledged again.
func (c *Cursor) Rewind() {
	s := c.s
	s.mu.Lock()
	c.next, c.nextPos = c.acked+1, c.ackPos.Load()
	c.inflight = c.inflight[:0]
	c.gen++
	s.mu.Unlock()
}

// Born is the last sequence the spool held before this cursor was
// created at its tail: it never saw the records up to it. 0 when the
// cursor started at the oldest record (or its file was lost).
func (c *Cursor) Born() uint64 {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.born
}

// Acked is the last acknowledged sequence.
func (c *Cursor) Acked() uint64 {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.acked
}

// DroppedTotal counts the records this cursor skipped by drop policies
// (the spool's drop_oldest and TrimBacklog), persisted across restarts.
func (c *Cursor) DroppedTotal() uint64 { return c.droppedTotal.Load() }

// Dropped reports whether seq was skipped by a drop policy (persisted),
// as far as the cursor's exact memory of drops reaches: its
// maxDroppedRanges-1 latest drops at least. Older ones are merged into one
// range with what lay between them, and a record there is DropForgotten.
func (c *Cursor) Dropped(seq uint64) bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	for _, r := range c.dropped {
		if r.From <= r.To && seq >= r.From && seq <= r.To {
			return true
		}
	}
	return false
}

// cutDrops leaves out of drops what lies past last: drops of records lost
// with a cut tail, whose sequences later records (of a later epoch) take
// again, and which were never dropped.
func cutDrops(drops []Range, last uint64) ([]Range, bool) {
	cut := false
	out := drops[:0:0]
	for _, r := range drops {
		lo, hi, merged := r.From, r.To, r.From > r.To
		if merged {
			lo, hi = r.To, r.From
		}
		switch {
		case lo > last:
			cut = true
			continue
		case hi > last:
			hi, cut = last, true
		}
		if merged && lo < hi {
			r = Range{From: hi, To: lo}
		} else {
			r = Range{From: lo, To: hi} // a merged range cut to one record reads dropped
		}
		out = append(out, r)
	}
	return out, cut
}

// DropForgotten reports whether seq lies among the cursor's older drops,
// merged: it may have been dropped or acknowledged, which is not known
// any more.
func (c *Cursor) DropForgotten(seq uint64) bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return len(c.dropped) > 0 && c.dropped[0].From > c.dropped[0].To && seq >= c.dropped[0].To && seq <= c.dropped[0].From
}

// TrimBacklog drops the oldest unacknowledged records of this cursor alone
// until its backlog is at most maxBytes (a per-consumer cap). It returns how
// many records it skipped.
func (c *Cursor) TrimBacklog(maxBytes int64) (uint64, error) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	target := s.tailPos - maxBytes
	if c.ackPos.Load() >= target {
		return 0, nil
	}
	seq, pos, err := s.dropPointLocked(target)
	if err != nil {
		return 0, err
	}
	return c.skipLocked(seq, pos, true), nil
}

// SkipTo acknowledges everything up to seq without delivering it, counted
// as dropped when counted is set.
func (c *Cursor) SkipTo(seq uint64, counted bool) (uint64, error) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq <= c.acked {
		return 0, nil
	}
	pos, err := s.posOf(seq)
	if err != nil {
		return 0, err
	}
	return c.skipLocked(min(seq, s.last), pos, counted), nil
}

// skipLocked moves the acknowledged position to (seq, pos). s.mu held.
func (c *Cursor) skipLocked(seq uint64, pos int64, counted bool) uint64 {
	if seq <= c.acked {
		return 0
	}
	n := seq - c.acked
	if counted {
		if k := len(c.dropped) - 1; k >= 0 && c.dropped[k].To == c.acked {
			c.dropped[k].To = seq // contiguous with the previous drop
		} else {
			c.dropped = append(c.dropped, Range{c.acked + 1, seq})
		}
		if len(c.dropped) > maxDroppedRanges {
			// The oldest two become one merged range, stored reversed,
			// over both and what lay between them (DropForgotten): a
			// dropped record is never taken for an acknowledged one.
			// It spans two or more records, so reversed it is told apart.
			c.dropped[1] = Range{From: c.dropped[1].To, To: min(c.dropped[0].From, c.dropped[0].To)}
			c.dropped = slices.Delete(c.dropped, 0, 1)
		}
		c.droppedTotal.Add(n)
		c.s.st.dropped.Add(n)
	}
	c.acked = seq
	c.ackPos.Store(pos)
	c.dirty = true
	i := 0
	for i < len(c.inflight) && c.inflight[i].seq <= seq {
		i++
	}
	c.inflight = append(c.inflight[:0], c.inflight[i:]...)
	if c.next <= seq {
		c.next, c.nextPos = seq+1, pos
		c.gen++
	}
	return n
}

// Backlog reports what the cursor has not acknowledged.
func (c *Cursor) Backlog() Backlog {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	b := Backlog{Bytes: s.tailPos - c.ackPos.Load()}
	if s.last > c.acked {
		b.Records = s.last - c.acked
	}
	if b.Bytes > 0 {
		b.Oldest = s.timeAtLocked(c.ackPos.Load())
	}
	return b
}

// timeAtLocked reads the append time of the record starting at pos.
func (s *Spool) timeAtLocked(pos int64) time.Time {
	seg := s.segs[s.segIndexAt(pos)]
	if pos < seg.base {
		pos = seg.base
	}
	f, err := os.Open(seg.path)
	if err != nil {
		return time.Time{}
	}
	defer f.Close()
	var h [10 + headerSize]byte
	n, _ := f.ReadAt(h[:], pos-seg.base)
	_, vn := binary.Uvarint(h[:n])
	if vn <= 0 || n < vn+headerSize {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.LittleEndian.Uint64(h[vn+16:])))
}

// Cursor files. "SLC3" (this version): two slots of cursorSlot bytes,
// each "SLC3", a generation u64, acked u64, dropped total u64, born u64,
// n u32, n × (from,to u64) (the drops; a first one with from > to is
// older drops merged, Cursor.DropForgotten), and a CRC32C of everything
// before it in the slot. The valid slot with the higher generation holds
// the state. A persist writes the other slot in place and fdatasyncs the file: an
// overwrite of blocks the file already has, without a new file, a rename,
// a directory fsync or any metadata write, every CursorSyncInterval,
// beside the WAL's fsyncs. A crash in the middle of it leaves the slot it
// did not touch whole. A file is written whole (temp file, rename,
// directory fsync) when a cursor is created, at its first persist after an
// Open, and after a failed write.
//
// Earlier versions wrote "SLC2" (the same fields without generation or
// slots) and "SLC1" (no born): both are read. An earlier version finds an
// "SLC3" file torn and restarts that cursor at the oldest record
// (re-delivery, never a skip).
const (
	cursorSlot     = 4096
	cursorFileSize = 2 * cursorSlot
)

// stateLocked is the cursor's state to persist.
func (c *Cursor) stateLocked() cursorState {
	return cursorState{acked: c.acked, droppedTotal: c.droppedTotal.Load(), born: c.born, dropped: slices.Clone(c.dropped)}
}

// encodeSlot is one slot of an "SLC3" file holding st at generation gen.
func encodeSlot(gen uint64, st cursorState) []byte {
	b := make([]byte, 0, 44+16*len(st.dropped))
	b = append(b, "SLC3"...)
	b = binary.LittleEndian.AppendUint64(b, gen)
	b = binary.LittleEndian.AppendUint64(b, st.acked)
	b = binary.LittleEndian.AppendUint64(b, st.droppedTotal)
	b = binary.LittleEndian.AppendUint64(b, st.born)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(st.dropped)))
	for _, r := range st.dropped {
		b = binary.LittleEndian.AppendUint64(b, r.From)
		b = binary.LittleEndian.AppendUint64(b, r.To)
	}
	return binary.LittleEndian.AppendUint32(b, crc(b))
}

// cursorImage is a whole "SLC3" file: st in slot 0 at generation gen, slot
// 1 empty.
func cursorImage(gen uint64, st cursorState) []byte {
	img := make([]byte, cursorFileSize)
	copy(img, encodeSlot(gen, st))
	return img
}

type cursorState struct {
	acked        uint64
	droppedTotal uint64
	born         uint64
	dropped      []Range
	gen          uint64 // generation of the slot it was read from ("SLC3")
	// durable is the acked sequence the disk surely holds: with both
	// slots valid, the lower of the two. The newer slot may be one whose
	// fdatasync failed and that the page cache still shows to a process
	// started again without a reboot (Linux keeps such pages, marked
	// clean, and never writes them); the older one was written before a
	// successful fdatasync.
	durable uint64
}

var errTornCursor = errors.New("torn cursor file")

// decodeCursor reads a cursor file of any version.
func decodeCursor(b []byte) (cursorState, error) {
	if len(b) == cursorFileSize {
		var best cursorState
		found := false
		durable := uint64(math.MaxUint64)
		for slot := range 2 {
			st, err := decodeSlot(b[slot*cursorSlot : (slot+1)*cursorSlot])
			if err != nil {
				continue
			}
			durable = min(durable, st.acked)
			if !found || st.gen > best.gen {
				best, found = st, true
			}
		}
		if !found {
			return best, errTornCursor
		}
		best.durable = durable
		return best, nil
	}
	st, err := decodeOld(b)
	st.durable = st.acked
	return st, err
}

// decodeSlot reads one slot of an "SLC3" file.
func decodeSlot(b []byte) (cursorState, error) {
	var st cursorState
	if string(b[:4]) != "SLC3" {
		return st, errTornCursor
	}
	const h = 36 // magic, gen, acked, dropped total, born
	n := int(binary.LittleEndian.Uint32(b[h:]))
	if n > (len(b)-h-8)/16 {
		return st, errTornCursor
	}
	end := h + 4 + 16*n
	if crc(b[:end]) != binary.LittleEndian.Uint32(b[end:]) {
		return st, errTornCursor
	}
	st.gen = binary.LittleEndian.Uint64(b[4:])
	st.acked = binary.LittleEndian.Uint64(b[12:])
	st.droppedTotal = binary.LittleEndian.Uint64(b[20:])
	st.born = binary.LittleEndian.Uint64(b[28:])
	for i := range n {
		p := h + 4 + 16*i
		st.dropped = append(st.dropped, Range{binary.LittleEndian.Uint64(b[p:]), binary.LittleEndian.Uint64(b[p+8:])})
	}
	return st, nil
}

// decodeOld reads the "SLC2" and "SLC1" files of earlier versions.
func decodeOld(b []byte) (cursorState, error) {
	var st cursorState
	if len(b) < 28 || (string(b[:4]) != "SLC1" && string(b[:4]) != "SLC2") {
		return st, errTornCursor
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc(body) != sum {
		return st, errTornCursor
	}
	st.acked = binary.LittleEndian.Uint64(b[4:])
	st.droppedTotal = binary.LittleEndian.Uint64(b[12:])
	h := 20
	if string(b[:4]) == "SLC2" {
		if len(body) < 32 {
			return st, errTornCursor
		}
		st.born, h = binary.LittleEndian.Uint64(b[20:]), 28
	}
	n := int(binary.LittleEndian.Uint32(b[h:]))
	if len(body) != h+4+16*n {
		return st, errTornCursor
	}
	for i := 0; i < n; i++ {
		p := h + 4 + 16*i
		st.dropped = append(st.dropped, Range{binary.LittleEndian.Uint64(b[p:]), binary.LittleEndian.Uint64(b[p+8:])})
	}
	return st, nil
}

// loadCursors reads every cursor named in the registry or found on disk.
// A registered cursor whose file is missing or torn restarts at the oldest
// record: re-delivery, never a skip.
func (s *Spool) loadCursors() error {
	dir := filepath.Join(s.dir, "cursors")
	des, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("spool: list cursors: %w", err)
	}
	names := slices.Clone(s.registry)
	for _, de := range des {
		n := de.Name()
		if strings.HasSuffix(n, ".tmp") {
			os.Remove(filepath.Join(dir, n))
			continue
		}
		if base, ok := strings.CutSuffix(n, ".cursor"); ok && !slices.Contains(names, base) {
			names = append(names, base)
		}
	}
	registryChanged := len(names) != len(s.registry)
	first := s.segs[0].first
	for _, name := range names {
		c := &Cursor{s: s, name: name}
		b, err := os.ReadFile(s.cursorPath(name))
		var st cursorState
		if err == nil {
			st, err = decodeCursor(b)
		}
		if err != nil {
			s.log.Warn("spool cursor lost; restarting it at the oldest record (messages will be re-delivered)",
				"cursor", name, "err", err)
			st = cursorState{acked: first - 1}
			c.reset, c.dirty = true, true
			s.st.cursorResets.Add(1)
		}
		cut := false
		if st.acked > s.last {
			s.log.Warn("spool cursor beyond the tail (tail was cut); moving it to the tail",
				"cursor", name, "acked", st.acked, "last", s.last)
			st.acked, cut = s.last, true
		}
		if st.born > s.last { // records up to born were lost with the cut tail
			st.born, cut = s.last, true
		}
		if drops, ok := cutDrops(st.dropped, s.last); ok {
			st.dropped, cut = drops, true
		}
		if cut {
			// Persisted before Open returns (cutCursors): new records
			// take the lost sequences again, and a crash before the next
			// persist must not find the old file beside them.
			c.dirty = true
			s.cutCursors = append(s.cutCursors, c)
		}
		if st.acked+1 < first {
			st.acked = first - 1
		}
		pos, err := s.posOf(st.acked)
		if err != nil {
			return fmt.Errorf("spool: cursor %s: %w", name, err)
		}
		c.acked, c.dropped, c.born = st.acked, st.dropped, st.born
		c.droppedTotal.Store(st.droppedTotal)
		c.pgen = st.gen
		if !c.dirty {
			// Truncation goes by what the disk surely holds; until the
			// first persist (a whole file) makes the rest durable.
			c.persisted = min(st.acked, st.durable)
			c.dirty = c.persisted < st.acked
		}
		c.ackPos.Store(pos)
		c.next, c.nextPos = c.acked+1, pos
		s.cursors[name] = c
	}
	if registryChanged {
		s.registry = names
		return s.writeMeta()
	}
	return nil
}

// BacklogBytes is Backlog().Bytes without reading any file: cheap enough
// for every request.
func (c *Cursor) BacklogBytes() int64 {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.s.tailPos - c.ackPos.Load()
}

// Get reads one record by sequence (at most markEvery records of one
// segment are read). It returns ErrNoRecord when the record is not on disk
// any more (or never was), ErrCorrupt when its segment is damaged, and
// other errors (no file descriptor free, EIO) as they are: passing.
func (s *Spool) Get(seq uint64) (Record, error) {
	s.mu.Lock()
	if seq == 0 || seq > s.last || seq < s.segs[0].first {
		s.mu.Unlock()
		return Record{}, ErrNoRecord
	}
	i := slices.IndexFunc(s.segs, func(sg segment) bool { return sg.last >= seq })
	seg := s.withResumeLocked(s.segs[i])
	s.mu.Unlock()
	if seq < seg.first {
		return Record{}, ErrNoRecord
	}
	data, q, _, err := seg.chunk(seq)
	if errors.Is(err, os.ErrNotExist) {
		return Record{}, ErrNoRecord // truncated meanwhile
	}
	if damaged(err) {
		return Record{}, fmt.Errorf("%w: %v", ErrCorrupt, err) // a file cut short
	}
	if err != nil {
		return Record{}, err
	}
	for off := 0; off < len(data); q++ {
		e, n, st := nextFrame(data[off:])
		if st != frameOK || e.seq != q {
			return Record{}, ErrCorrupt
		}
		off += n
		if e.seq == seq {
			return Record{ID: ID{Epoch: e.epoch, Seq: e.seq}, Time: time.Unix(0, e.time), Data: e.payload, Corrupt: e.corrupt}, nil
		}
	}
	return Record{}, ErrNoRecord
}
