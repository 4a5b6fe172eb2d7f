package spool

import (
	"bytes"
	"fmt"
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
// directory fsync) when a loss is found. At most maxLostRanges are kept;
// past that the two oldest are merged with what lies between them: a
// record there may read lost when it was not, never the reverse.
//
// The note is written after the quarantine it records: a crash between
// the two, or a disk that refuses the write (logged), forgets it at the
// next Open.

const (
	lostFileName  = "lost-records"
	maxLostRanges = 256
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

// loadLost reads the lost-records file; lines that are not three numbers
// are ignored.
func (s *Spool) loadLost() error {
	b, err := os.ReadFile(filepath.Join(s.dir, lostFileName))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("spool: read %s: %w", lostFileName, classify(err))
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
	s.lost.Store(&rs)
	return nil
}

// addLost notes sequences first..last of epochs up to this open's as lost,
// and writes the note. A write that fails is logged: the note holds in
// memory until the agent stops.
func (s *Spool) addLost(first, last uint64) {
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
		if r.first <= first && last <= r.last && s.epoch <= r.epoch {
			return
		}
	}
	rs = append(slices.Clone(rs), lostRange{first, last, s.epoch})
	for len(rs) > maxLostRanges {
		a, b := rs[0], rs[1]
		rs[1] = lostRange{min(a.first, b.first), max(a.last, b.last), max(a.epoch, b.epoch)}
		rs = rs[1:]
	}
	s.lost.Store(&rs)
	s.st.lostRecords.Add(last - first + 1)
	var out []byte
	for _, r := range rs {
		out = fmt.Appendf(out, "%d %d %d\n", r.first, r.last, r.epoch)
	}
	err := replaceFile(filepath.Join(s.dir, lostFileName), out)
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		s.log.Error("spool: cannot write the note of lost records; their statuses read lost until the agent stops, then as their cursors say",
			"first", first, "last", last, "err", err)
	}
}
