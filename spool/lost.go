package spool

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// Records lost to damage. Framing damaged inside a closed segment is
// quarantined at Open with the rest of its segment; framing a read finds
// damaged after Open (bit rot, an outside write, a read error) makes
// readers skip the rest of that segment. Either way the records there are
// never handed out again, and a cursor moves past them as past any other:
// without a note of them, the agent would take them for delivered.
// The spool keeps that note: the sequences lost, with the epoch current
// when the loss was found (records of later epochs that take the same
// sequences after a tail cut are not lost), in SPOOL_DIR/lost-records, one
// "first last epoch" line each, written whole (temporary file, rename,
// directory fsync) when a loss is found. A spool whose WAL is gone (one
// recreated in place: its sequences and, with meta gone too, its epochs
// start over) drops the note at Open (dropLost). At most maxLostRanges are kept;
// past that the two oldest are merged with what lies between them: a
// record there may read lost when it was not, never the reverse.
//
// A quarantine's note is written before the segment is cut, with the
// highest epoch: the lost records' epochs are not known (meta lost, or
// restored from an older copy, says nothing sure of them), and sequences
// in closed segments are taken again only when the segments after them
// are lost too (a machine crash under SyncNever, which does not fsync the
// WAL directory): those later records read lost then, never the reverse.
// A disk that refuses the write (logged) forgets the note at the next
// Open.
//
// After a skip, the records appended behind the damage are read in order
// by position, but a read by sequence (ReadFrom, Get) parses the segment
// from a sparse mark before the damage: the skip records where reading
// resumes (Spool.resume), so those find them, and a later skip over the
// same damage stops there too (skipToLocked). A record after damaged
// framing that no skip has passed yet, read by sequence, is skipped and
// noted lost although its own bytes are intact (its position is known only
// by parsing over the damage).

const (
	lostFileName     = "lost-records"
	maxLostRanges    = 256
	maxLostFileBytes = 1 << 20 // what is read of the file (256 lines take about 15 KiB)
)

// lostRange: sequences first..last of epochs up to epoch are lost.
type lostRange struct {
	first, last uint64
	epoch       uint32
}

// Lost reports whether the record id was lost to damage in its segment
// (quarantined at Open, or skipped by a read). It takes no lock: the agent
// asks it for every status.
func (s *Spool) Lost(id ID) bool {
	p := s.lost.Load()
	if p == nil {
		return false
	}
	for _, r := range *p {
		if r.first <= id.Seq && id.Seq <= r.last && id.Epoch <= r.epoch {
			return true
		}
	}
	return false
}

// Cut reports whether the record id names is known to be gone from the
// spool's tail: an earlier open wrote it at a sequence above the last this
// open found (a machine crash cut the unsynced tail, SyncInterval or
// SyncNever), or its sequence holds a record of another epoch now (the
// sequence was used again). What is kept by id beside the spool (callback
// reports, idempotency keys) asks it. A record of this open is never cut,
// and one truncated from the front since is not told from a delivered
// one (false).
func (s *Spool) Cut(id ID) bool {
	if id.Epoch >= s.epoch || id.Seq == 0 {
		return false
	}
	if id.Seq > s.openLast {
		return true
	}
	rec, err := s.Get(id.Seq)
	return err == nil && rec.ID.Epoch != id.Epoch
}

// loadLost reads the lost-records file, a range a line. Lines that are
// not three numbers are left out, and what lies past maxLostFileBytes.
func (s *Spool) loadLost() error {
	b, err := os.ReadFile(filepath.Join(s.dir, lostFileName))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("spool: read %s: %w", lostFileName, classify(err))
	}
	if len(b) > maxLostFileBytes {
		b = b[:bytes.LastIndexByte(b[:maxLostFileBytes], '\n')+1] // whole lines
	}
	var rs []lostRange
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := bytes.Fields(line)
		if len(f) != 3 {
			continue
		}
		first, err1 := strconv.ParseUint(string(f[0]), 10, 64)
		last, err2 := strconv.ParseUint(string(f[1]), 10, 64)
		ep, err3 := strconv.ParseUint(string(f[2]), 10, 32)
		if err1 == nil && err2 == nil && err3 == nil && first > 0 && first <= last {
			rs = append(rs, lostRange{first, last, uint32(ep)})
		}
	}
	rs = mergeLost(rs)
	s.lost.Store(&rs)
	return nil
}

// mergeLost merges the oldest ranges, two at a time, with what lies between
// them, until at most maxLostRanges are left.
func mergeLost(rs []lostRange) []lostRange {
	for len(rs) > maxLostRanges {
		a, b := rs[0], rs[1]
		rs[1] = lostRange{min(a.first, b.first), max(a.last, b.last), max(a.epoch, b.epoch)}
		rs = rs[1:]
	}
	return rs
}

// maxResume bounds the resume points kept (the oldest go first: reading
// from before them fails again and is noted lost again).
const maxResume = 1024

// addResumeLocked records that record seq, if it exists, starts at
// logical position pos, after a stretch a read skipped. s.mu held.
func (s *Spool) addResumeLocked(seq uint64, pos int64) {
	for _, r := range s.resume {
		if r.seq == seq {
			return
		}
	}
	s.resume = append(s.resume, offMark{seq, pos})
	if len(s.resume) > maxResume {
		s.resume = slices.Delete(s.resume, 0, 1)
	}
}

// resumeAtLocked is the logical position where record seq starts, when a
// skip recorded it. s.mu held.
func (s *Spool) resumeAtLocked(seq uint64) (int64, bool) {
	for _, r := range s.resume {
		if r.seq == seq {
			return r.off, true
		}
	}
	return 0, false
}

// withResumeLocked is seg with the resume points inside it among its
// marks, so that a record after a skipped stretch is parsed from there.
// The marks are copied: seg's are shared. s.mu held.
func (s *Spool) withResumeLocked(seg segment) segment {
	var extra []offMark
	for _, r := range s.resume {
		if seg.first <= r.seq && r.seq <= seg.last {
			extra = append(extra, offMark{r.seq, r.off - seg.base})
		}
	}
	if len(extra) == 0 {
		return seg
	}
	marks := append(slices.Clone(seg.marks), extra...)
	slices.SortFunc(marks, func(a, b offMark) int { return cmp.Compare(a.seq, b.seq) })
	seg.marks = slices.CompactFunc(marks, func(a, b offMark) bool { return a.seq == b.seq })
	return seg
}

// addLost notes sequences first..last of epochs up to epoch as lost, and
// writes the note. A write that fails is logged: the note holds in memory
// until the agent stops.
func (s *Spool) addLost(first, last uint64, epoch uint32) {
	if first == 0 || first > last {
		return
	}
	s.lostMu.Lock()
	defer s.lostMu.Unlock()
	var rs []lostRange
	if p := s.lost.Load(); p != nil {
		rs = *p
	}
	for _, r := range rs {
		if r.first <= first && last <= r.last && epoch <= r.epoch {
			return
		}
	}
	rs = mergeLost(append(slices.Clone(rs), lostRange{first, last, epoch}))
	s.lost.Store(&rs)
	s.st.lostRecords.Add(last - first + 1)
	if err := s.writeLostLocked(rs); err != nil {
		s.log.Error("spool: cannot write the note of lost records; their statuses read lost until the agent stops, then as their cursors say",
			"first", first, "last", last, "err", err)
	}
}

// writeLostLocked writes the note whole. s.lostMu held.
func (s *Spool) writeLostLocked(rs []lostRange) error {
	var out []byte
	for _, r := range rs {
		out = fmt.Appendf(out, "%d %d %d\n", r.first, r.last, r.epoch)
	}
	err := replaceFile(filepath.Join(s.dir, lostFileName), out)
	if err == nil {
		err = syncDir(s.dir)
	}
	return err
}

// skipTo is where a read that cannot parse past record from (at logical
// position pos) in seg, as the reader saw it, goes on: the first resume
// point after pos in seg (another reader's skip, records appended behind
// the damage), else seg's end. It returns the record there (the first not
// lost) and its position. s.mu held.
func (s *Spool) skipToLocked(from uint64, pos int64, seg segment) (uint64, int64) {
	next, at := seg.last+1, seg.base+seg.size
	for _, r := range s.resume {
		if r.off > pos && r.seq > from && r.off < at && r.seq <= seg.last {
			next, at = r.seq, r.off
		}
	}
	return next, at
}

// dropLost forgets the note: Open found no WAL segment at all.
func (s *Spool) dropLost() {
	s.lostMu.Lock()
	defer s.lostMu.Unlock()
	if p := s.lost.Load(); p == nil || len(*p) == 0 {
		return
	}
	s.lost.Store(nil)
	if err := os.Remove(filepath.Join(s.dir, lostFileName)); err != nil && !os.IsNotExist(err) {
		s.log.Warn("spool: cannot remove the note of a previous spool's lost records", "err", err)
	}
	s.log.Warn("spool: no WAL segments; the note of lost records belonged to the spool that was here, dropped")
}

// lostEpochMax is the highest epoch the note names, the highest of all
// left out.
func (s *Spool) lostEpochMax() uint32 {
	var top uint32
	if p := s.lost.Load(); p != nil {
		for _, r := range *p {
			if r.epoch != math.MaxUint32 {
				top = max(top, r.epoch)
			}
		}
	}
	return top
}
