package spool

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/wal"
)

// SyncPolicy says when appended records are fsynced.
type SyncPolicy string

// Sync policies.
const (
	// SyncAlways: an append returns after the fsync of the group commit
	// that holds it. Survives process and machine crashes. The tail
	// segment is zero-filled ahead of its records (zeroFillBytes at a
	// time, cut when the segment is closed), so that such an fsync writes
	// the records' blocks only: after an append, an fsync also writes the
	// file's metadata, three device writes instead of two (README,
	// "Benchmark" under Passive mode).
	SyncAlways SyncPolicy = "always"
	// SyncInterval: fsync on a timer. Survives a process crash; a machine
	// crash loses up to one interval.
	SyncInterval SyncPolicy = "interval"
	// SyncNever: the OS decides. Survives a process crash only.
	SyncNever SyncPolicy = "never"
)

// FullPolicy says what an append does when the backlog reaches MaxBytes.
type FullPolicy string

// Full policies.
const (
	// Reject fails the append with ErrFull.
	Reject FullPolicy = "reject"
	// DropOldest advances the slowest cursors past the oldest records and
	// counts what each cursor lost.
	DropOldest FullPolicy = "drop_oldest"
)

// Options configure a spool. The zero value of every field means its
// default.
type Options struct {
	// SegmentBytes is the target size of one segment file. Default 1 MiB.
	// tidwall/wal holds the tail segment in memory and grows it by
	// copying, so this bounds memory use and the stalls of that growth.
	SegmentBytes int64
	// Sync is the fsync policy. Default SyncAlways.
	Sync SyncPolicy
	// SyncInterval is the timer of SyncInterval, and under SyncAlways the
	// longest a lazy append (AppendLazy) waits for an fsync. Default 100 ms.
	SyncInterval time.Duration
	// MaxBytes caps the backlog: the bytes between the slowest cursor and
	// the tail. Default 1 GiB.
	MaxBytes int64
	// FullPolicy applies at MaxBytes. Default Reject.
	FullPolicy FullPolicy
	// AppendTimeout bounds how long Append waits. Default 5 s.
	AppendTimeout time.Duration
	// MaxRecordBytes caps one record's payload. Default 16 MiB.
	MaxRecordBytes int
	// MaxCommitBytes caps what one group commit writes. Default 4 MiB.
	MaxCommitBytes int
	// TruncateSegments is how many whole segments every cursor must have
	// passed before the front is truncated (in one go). Default 2.
	TruncateSegments int
	// CursorSyncInterval is how often acknowledged cursor positions are
	// persisted. A crash re-delivers at most this much. Default 50 ms.
	CursorSyncInterval time.Duration
	// SyncVia, if set, is a spool on the same file system whose commit
	// goroutine runs this spool's WAL fsyncs, in the same round as its
	// own (concurrently with it, so that one journal commit of the file
	// system tends to cover both): a write of this spool waits for the
	// next round of that one instead of starting a journal commit of its
	// own beside it. Nothing is acknowledged earlier than before: an
	// append still returns after the fsync of its own file. Once that
	// spool is closed, this one fsyncs itself. Meant for SyncAlways
	// spools beside a SyncAlways spool (a queue's log beside the main
	// spool). Default nil: the spool fsyncs itself.
	SyncVia *Spool
	// OnFsync, if set, is called with the duration of every WAL fsync.
	OnFsync func(time.Duration)
	// Logger for recovery reports and disk errors. Default slog.Default().
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 1 << 20
	}
	if o.Sync == "" {
		o.Sync = SyncAlways
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = 100 * time.Millisecond
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 30
	}
	if o.FullPolicy == "" {
		o.FullPolicy = Reject
	}
	if o.AppendTimeout <= 0 {
		o.AppendTimeout = 5 * time.Second
	}
	if o.MaxRecordBytes <= 0 {
		o.MaxRecordBytes = 16 << 20
	}
	if o.MaxCommitBytes <= 0 {
		o.MaxCommitBytes = 4 << 20
	}
	if o.TruncateSegments <= 0 {
		o.TruncateSegments = 2
	}
	if o.CursorSyncInterval <= 0 {
		o.CursorSyncInterval = 50 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

func (o *Options) validate() error {
	switch o.Sync {
	case SyncAlways, SyncInterval, SyncNever:
	default:
		return fmt.Errorf("spool: unknown sync policy %q", o.Sync)
	}
	switch o.FullPolicy {
	case Reject, DropOldest:
	default:
		return fmt.Errorf("spool: unknown full policy %q", o.FullPolicy)
	}
	return nil
}

// ID identifies a record forever within one spool: the epoch of the open
// that appended it and its sequence. Sequences can be reused after a
// machine crash cut an unsynced tail; epochs never are.
type ID struct {
	Epoch uint32
	Seq   uint64
}

// Spool is a durable, capped, multi-consumer log. All methods are safe for
// concurrent use.
type Spool struct {
	dir    string
	walDir string
	opts   Options
	log    *slog.Logger
	lock   *os.File
	// fill is the zero-fill rule meta records: the previous open's until
	// recovery has run under it, then this open's. filling is how far
	// ahead this open zero-fills (0: not at all).
	fill    zeroFillRule
	filling int64
	// persistMu serializes cursor persistence (Flush and the background
	// flush share the cursors' .tmp files).
	persistMu   sync.Mutex
	persistDone bool // guarded by persistMu: Close has persisted for the last time
	id          string
	epoch       uint32
	rec         Recovery
	openLast    uint64 // the last sequence this open found (see Cut)

	wl *wal.Log // owned by the commit goroutine; TruncateFront from the flusher

	appendCh chan *appendReq
	trunc    chan uint64 // flusher → commit goroutine: truncate before this sequence
	closing  chan struct{}
	loopDone chan struct{} // closed when the commit goroutine has exited
	syncReqs chan *syncReq // fsyncs of spools with SyncVia set to this one
	wg       sync.WaitGroup
	closed   atomic.Bool
	closeMu  sync.Mutex

	mu       sync.Mutex // guards the fields below
	segs     []segment
	last     uint64 // last durable sequence
	tailPos  int64  // logical position after the last durable record
	notify   chan struct{}
	cursors  map[string]*Cursor
	registry []string // cursor names recorded in the meta file
	diskErr  error    // last write failure, nil when healthy
	// truncGen counts front truncations begun and ended: odd while one
	// removes or rewrites segment files before segs says so. A reader that
	// finds a file gone tells a truncation (one ran since it looked, or
	// runs) from damage by it (truncated, racedLocked, damagedLocked).
	truncGen uint64

	cutCursors []*Cursor // moved back to a cut tail by this Open, to persist before it returns

	// lost notes records lost to damage (lost.go); lostMu serializes
	// its writers, readers take no lock.
	lost   atomic.Pointer[[]lostRange]
	lostMu sync.Mutex
	// resume: where records start again after damaged framing a read
	// skipped (sequence, logical position), guarded by mu: the sparse
	// marks before the damage cannot reach them (lost.go).
	resume []offMark

	st stats
}

// reserveBytes is set aside on disk so that a spool can open (and persist
// its epoch) on a full file system.
const reserveBytes = 64 << 10

type meta struct {
	Version int      `json:"version"`
	ID      string   `json:"id"`
	Epoch   uint32   `json:"epoch"`
	Cursors []string `json:"cursors"`
	// How this open zero-fills its tail (SyncAlways): what recovery may
	// take for zero-filled room after a crash. Absent: none.
	ZeroFill     int64 `json:"zero_fill,omitempty"`
	SegmentBytes int64 `json:"segment_bytes,omitempty"`
}

// zeroFillRule is what the run that wrote m could have zero-filled.
func (m meta) zeroFillRule() zeroFillRule {
	return zeroFillRule{fill: m.ZeroFill, limit: m.SegmentBytes + zeroFillSlack}
}

// Open opens or creates the spool in dir. It takes an exclusive lock on the
// directory, increments and persists the open epoch, repairs the segments
// (see Recovery) and loads the cursors.
func Open(dir string, opts Options) (*Spool, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "cursors"), 0o750); err != nil {
		return nil, fmt.Errorf("spool: create dir: %w", classify(err))
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{
		dir:      dir,
		walDir:   filepath.Join(dir, "wal"),
		opts:     opts,
		log:      opts.Logger,
		lock:     lock,
		appendCh: make(chan *appendReq, 1024),
		trunc:    make(chan uint64, 1),
		closing:  make(chan struct{}),
		loopDone: make(chan struct{}),
		syncReqs: make(chan *syncReq, 64),
		notify:   make(chan struct{}),
		cursors:  map[string]*Cursor{},
	}
	if err := s.open(); err != nil {
		if s.wl != nil {
			s.wl.Close()
		}
		lock.Close()
		return nil, err
	}
	if len(s.cutCursors) > 0 {
		// Cursors a cut tail moved back go to disk before any append
		// takes the lost sequences again: a crash after such an append
		// would find the old positions beside the new records and skip
		// them. A full disk gives back the reserve first; a disk that
		// still refuses keeps the spool from opening.
		err := s.persistCursors(s.cutCursors)
		if errors.Is(err, ErrDiskFull) && s.releaseReserve("persist cursors moved back to a cut tail") {
			err = s.persistCursors(s.cutCursors)
		}
		if err != nil {
			for _, c := range s.cursors {
				c.closePersist()
			}
			s.wl.Close()
			lock.Close()
			return nil, fmt.Errorf("spool: persist cursors moved back to a cut tail: %w", err)
		}
		s.cutCursors = nil
	}
	// The reserve is released when the disk is full at the next Open.
	if _, err := os.Stat(filepath.Join(dir, "reserve")); os.IsNotExist(err) {
		_ = writeFileSync(filepath.Join(dir, "reserve"), make([]byte, reserveBytes))
	}
	s.wg.Add(2)
	go s.commitLoop()
	go s.flushLoop()
	return s, nil
}

func (s *Spool) open() error {
	m, err := readMeta(filepath.Join(s.dir, "meta"))
	if err != nil {
		// Unreadable identity: a fresh id keeps ids unique; cursors
		// found on disk are still loaded below.
		s.log.Error("spool meta file unreadable, starting a new spool identity", "err", err)
		m = meta{}
	}
	metaRead := m.ID != "" // its epoch is above every record's
	if m.ID == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("spool: id: %w", err)
		}
		m.ID = hex.EncodeToString(b[:])
	}
	m.Version = 1
	// Until recovery has run, meta keeps the rule of the run that wrote
	// the segments: an open that dies before then must not make the next
	// one judge them by its own.
	s.fill = m.zeroFillRule()
	if m.Epoch >= math.MaxUint32-1 {
		return fmt.Errorf("spool: meta's epoch is %d: epochs are exhausted", m.Epoch)
	}
	m.Epoch++
	s.id, s.epoch = m.ID, m.Epoch
	s.registry = m.Cursors
	if err := s.writeMetaAtOpen(); err != nil {
		return err
	}

	// The note of lost records is read first: a quarantine adds to it
	// before it cuts (lost.go). Sequences in closed segments are never
	// taken again, so these notes hold for every epoch.
	if err := s.loadLost(); err != nil {
		return err
	}
	segs, rec, err := recoverWAL(s.walDir, filepath.Join(s.dir, "quarantine"), false, s.fill,
		func(first, last uint64) { s.addLost(first, last, math.MaxUint32) })
	if err != nil {
		return fmt.Errorf("spool: recover: %w", err)
	}
	// The segments hold no room now: this open's rule from here on.
	prev := s.fill
	s.fill = zeroFillRule{fill: int64(zeroFill(s.opts.Sync)), limit: s.opts.SegmentBytes + zeroFillSlack}
	if err := s.writeMeta(); err != nil {
		// Meta still names the previous rule; this open appends without
		// zero-fill rather than leave room meta does not describe.
		s.log.Warn("spool: cannot record the zero-fill rule in meta; appending without zero-fill", "err", err)
		s.fill = prev
	} else {
		s.filling = s.fill.fill
	}
	s.rec = rec
	if !rec.Clean() {
		s.log.Warn("spool recovered", "tail_cut_bytes", rec.TailCutBytes,
			"quarantined", len(rec.Quarantined), "corrupt_records", len(rec.CorruptRecords),
			"removed_temp", rec.RemovedTemp, "finished_truncation", rec.FinishedTruncat)
	}
	for _, q := range rec.Quarantined {
		s.log.Error("spool segment damaged: rest of segment quarantined",
			"segment", q.Segment, "offset", q.Offset, "bytes", q.Bytes, "lost_records", q.LostRecords, "file", q.File)
	}
	s.st.repairs.Add(boolToInt(rec.TailCutBytes > 0))
	s.st.quarantines.Add(uint64(len(rec.Quarantined)))
	s.st.corruptions.Add(uint64(len(rec.CorruptRecords)))

	if err := s.openWAL(); err != nil {
		return err
	}
	if len(segs) == 0 {
		s.dropLost() // the WAL is new: the note was another spool's
		segs = []segment{{first: 1, last: 0, path: filepath.Join(s.walDir, segmentName(1))}}
		if err := syncDir(s.walDir); err != nil {
			return err
		}
	}
	s.segs = segs
	tail := segs[len(segs)-1]
	s.last = tail.last
	s.openLast = s.last
	s.tailPos = tail.base + tail.size
	if li, _ := s.wl.LastIndex(); li != s.last {
		return fmt.Errorf("spool: wal reports last index %d, segments end at %d: %w", li, s.last, ErrCorrupt)
	}
	// Epochs only rise. With meta unreadable or gone and the WAL kept,
	// this open's epoch goes above its last record's, so that what is kept
	// by (sequence, epoch) beside the spool (queue logs, status logs) still
	// tells these records from those of a spool recreated in place, which
	// starts again at epoch 1 with no records.
	// Above every record recovery parsed, not only the last (it may be
	// among those a quarantine lost), and, without meta, every epoch the
	// note of lost records names (records a tail cut removed had it; with
	// meta read, the note's epochs are below meta's unless the note is
	// wrong).
	top := rec.maxEpoch
	if !metaRead {
		top = max(top, s.lostEpochMax())
	}
	if r, err := s.Get(s.last); err == nil {
		top = max(top, r.ID.Epoch)
	}
	if top >= math.MaxUint32-1 {
		return fmt.Errorf("spool: a record's epoch is %d: epochs are exhausted", top)
	}
	if top >= s.epoch {
		s.log.Warn("spool: meta's epoch is below a record's; continuing above it", "meta_epoch", s.epoch, "record_epoch", top)
		s.epoch = top + 1
		if err := s.writeMetaAtOpen(); err != nil {
			return err
		}
	}
	return s.loadCursors()
}

// writeMetaAtOpen persists the open's epoch. A full disk must not keep the
// agent from starting and draining its backlog: it gives back the reserve
// and tries once more.
func (s *Spool) writeMetaAtOpen() error {
	err := s.writeMeta()
	if errors.Is(err, ErrDiskFull) && s.releaseReserve("persist the epoch") {
		err = s.writeMeta()
	}
	if err != nil {
		return fmt.Errorf("spool: persist epoch: %w", err)
	}
	return nil
}

// releaseReserve removes the reserve file, if there is one, so that an
// open on a full disk can write what it must (why); it reports whether it
// did. The reserve is written again at the next open with room for it.
func (s *Spool) releaseReserve(why string) bool {
	if os.Remove(filepath.Join(s.dir, "reserve")) != nil {
		return false
	}
	s.log.Warn("spool: disk full at open; released the reserve file to " + why)
	return true
}

func (s *Spool) openWAL() error {
	wl, err := wal.Open(s.walDir, &wal.Options{
		NoSync:           true, // the spool fsyncs itself, per policy
		SegmentSize:      int(s.opts.SegmentBytes),
		SegmentCacheSize: 1,
		NoCopy:           true,
		AllowEmpty:       true,
		DirPerms:         0o750,
		FilePerms:        0o640,
		ZeroFill:         int(s.filling),
	})
	if err != nil {
		return fmt.Errorf("spool: open wal: %w", classify(err))
	}
	s.wl = wl
	return nil
}

// zeroFillBytes is how far ahead of its records a SyncAlways spool's tail
// segment is zero-filled at a time (at most to the segment size).
const zeroFillBytes = 1 << 20

func zeroFill(p SyncPolicy) int {
	if p == SyncAlways {
		return zeroFillBytes
	}
	return 0
}

func readMeta(path string) (meta, error) {
	var m meta
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return m, nil
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return meta{}, fmt.Errorf("parse %s: %w", path, err)
	}
	if m.ID == "" {
		return meta{}, fmt.Errorf("parse %s: no id", path)
	}
	return m, nil
}

// writeMeta persists id, epoch and the cursor registry; s.mu held or not
// yet shared.
func (s *Spool) writeMeta() error {
	names := append([]string(nil), s.registry...)
	sort.Strings(names)
	m := meta{Version: 1, ID: s.id, Epoch: s.epoch, Cursors: names}
	if s.fill.fill > 0 {
		m.ZeroFill, m.SegmentBytes = s.fill.fill, s.fill.limit-zeroFillSlack
	}
	b, _ := json.Marshal(m)
	return atomicWrite(filepath.Join(s.dir, "meta"), b)
}

// SpoolID is the spool's persistent random identity (16 hex digits).
func (s *Spool) SpoolID() string { return s.id }

// Epoch is the open counter of this open.
func (s *Spool) Epoch() uint32 { return s.epoch }

// Recovery reports what Open repaired.
func (s *Spool) Recovery() Recovery { return s.rec }

// Dir is the spool directory.
func (s *Spool) Dir() string { return s.dir }

// Close stops appends (pending ones fail with ErrClosed), persists every
// cursor, closes the WAL and releases the directory lock. Close is
// idempotent.
func (s *Spool) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	close(s.closing)
	s.wg.Wait()
	s.mu.Lock()
	close(s.notify) // wake blocked readers; they see closed
	cursors := make([]*Cursor, 0, len(s.cursors))
	for _, c := range s.cursors {
		cursors = append(cursors, c)
	}
	s.mu.Unlock()
	var errs []error
	if err := s.persistCursors(cursors); err != nil {
		errs = append(errs, err)
	}
	s.persistMu.Lock()
	for _, c := range cursors {
		c.closeFile()
		c.closePersist()
	}
	s.persistDone = true // the lock goes with Close: no cursor file is written after it
	s.persistMu.Unlock()
	if s.wl != nil { // nil while a disk failure keeps it from reopening
		if err := s.wl.Sync(); err != nil && s.diskErr == nil {
			errs = append(errs, classify(err))
		}
		if err := s.wl.Close(); err != nil && !errors.Is(err, wal.ErrClosed) {
			errs = append(errs, fmt.Errorf("close wal: %w", err))
		}
	}
	errs = append(errs, s.lock.Close())
	return errors.Join(errs...)
}

// LastSeq is the sequence of the last durable record (0 when none was ever
// written).
func (s *Spool) LastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// WaitAfter blocks until a record with a sequence above seq is durable
// (readable by a cursor), ctx is done, or the spool closes (ErrClosed).
func (s *Spool) WaitAfter(ctx context.Context, seq uint64) error {
	for {
		s.mu.Lock()
		if s.closed.Load() {
			s.mu.Unlock()
			return ErrClosed
		}
		if s.last > seq {
			s.mu.Unlock()
			return nil
		}
		ch := s.notify
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// FirstSeq is the sequence of the oldest record still on disk.
func (s *Spool) FirstSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.segs[0].first
}

// floorLocked is the logical position below which no cursor needs data.
func (s *Spool) floorLocked() int64 {
	floor := s.tailPos
	for _, c := range s.cursors {
		if p := c.ackPos.Load(); p < floor {
			floor = p
		}
	}
	return floor
}

// segIndexAt returns the segment holding logical position pos (a record
// boundary); the position right after a segment's end belongs to the next
// segment when there is one. s.mu held.
func (s *Spool) segIndexAt(pos int64) int {
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].base+s.segs[i].size > pos })
	if i == len(s.segs) {
		return len(s.segs) - 1
	}
	return i
}

// locate finds the sequence and end position of the first record ending at
// or after pos. It returns (s.last, s.tailPos) when pos is beyond the tail.
// s.mu held; reads one segment.
func (s *Spool) locate(pos int64) (uint64, int64, error) {
	if pos >= s.tailPos {
		return s.last, s.tailPos, nil
	}
	i := s.segIndexAt(pos)
	seg := s.segs[i]
	if i > 0 && pos == seg.base {
		// A segment boundary: the record ending there is the last of the
		// segment before.
		return s.segs[i-1].last, pos, nil
	}
	data, err := readSegment(seg.path, seg.size)
	if err != nil {
		return 0, 0, err
	}
	off := 0
	for seq := seg.first; seq <= seg.last; seq++ {
		_, n, st := nextFrame(data[off:])
		if st != frameOK {
			return 0, 0, fmt.Errorf("locate in %s: %w", filepath.Base(seg.path), ErrCorrupt)
		}
		off += n
		if seg.base+int64(off) >= pos {
			return seq, seg.base + int64(off), nil
		}
	}
	return seg.last, seg.base + seg.size, nil
}

// posOf returns the logical position right after record seq. s.mu held;
// reads at most markEvery records of one segment.
func (s *Spool) posOf(seq uint64) (int64, error) {
	if seq < s.segs[0].first {
		return s.segs[0].base, nil
	}
	if seq >= s.last {
		return s.tailPos, nil
	}
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].last >= seq })
	seg := s.segs[i]
	if seq < seg.first { // in a quarantined gap
		return seg.base, nil
	}
	if seq == seg.last { // its segment's end: known without parsing (damage before it)
		return seg.base + seg.size, nil
	}
	if p, ok := s.resumeAtLocked(seq + 1); ok { // the end of a skipped stretch
		return p, nil
	}
	seg = s.withResumeLocked(seg)
	data, q, off, err := seg.chunk(seq)
	if err != nil {
		return 0, err
	}
	for p := 0; q <= seq; q++ {
		_, n, st := nextFrame(data[p:])
		if st != frameOK {
			return 0, fmt.Errorf("position of %d in %s: %w", seq, filepath.Base(seg.path), ErrCorrupt)
		}
		p += n
		if q == seq {
			return seg.base + off + int64(p), nil
		}
	}
	return seg.base + seg.size, nil
}

func readSegment(path string, size int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, size)
	n, err := f.ReadAt(buf, 0)
	if int64(n) == size {
		return buf, nil
	}
	return nil, fmt.Errorf("read %s: %w", filepath.Base(path), err)
}

func boolToInt(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
