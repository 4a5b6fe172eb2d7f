package spool

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// SegmentInfo describes one segment file.
type SegmentInfo struct {
	Name  string
	First uint64
	Last  uint64
	Bytes int64
}

// CursorReport is a cursor as found on disk.
type CursorReport struct {
	Name  string
	Acked uint64
	Error string // "missing" or "torn" when Open would restart it at the oldest record
}

// Report is what Verify finds; it changes nothing on disk.
type Report struct {
	Dir      string
	ID       string
	Epoch    uint32
	Live     bool     // another process holds the directory lock
	Recovery Recovery // what Open would repair
	Segments []SegmentInfo
	Cursors  []CursorReport
	Records  []Record // with Inspect
}

// Verify reads a spool directory without writing to it — safe against the
// directory of a running agent — and reports what Open's recovery would do,
// the segments and the cursors. Segments of a live spool may grow while
// they are read (a partial record at the tail then shows as a tail cut),
// shrink (a tail's zero-filled room cut when it is cycled) or go (front
// truncation: left out).
func Verify(dir string) (Report, error) {
	r := Report{Dir: dir}
	if _, err := os.Stat(dir); err != nil {
		return r, err
	}
	r.Live = isLocked(dir)
	var zf zeroFillRule
	if m, err := readMeta(filepath.Join(dir, "meta")); err == nil {
		r.ID, r.Epoch = m.ID, m.Epoch
		zf = m.zeroFillRule()
		for _, n := range m.Cursors {
			r.Cursors = append(r.Cursors, CursorReport{Name: n})
		}
	}
	segs, rec, err := recoverWAL(filepath.Join(dir, "wal"), "", true, zf, nil)
	if err != nil {
		return r, err
	}
	r.Recovery = rec
	for _, s := range segs {
		r.Segments = append(r.Segments, SegmentInfo{Name: filepath.Base(s.path), First: s.first, Last: s.last, Bytes: s.size})
	}
	des, _ := os.ReadDir(filepath.Join(dir, "cursors"))
	for _, de := range des {
		if n, ok := strings.CutSuffix(de.Name(), ".cursor"); ok &&
			!slices.ContainsFunc(r.Cursors, func(c CursorReport) bool { return c.Name == n }) {
			r.Cursors = append(r.Cursors, CursorReport{Name: n})
		}
	}
	for i := range r.Cursors {
		c := &r.Cursors[i]
		b, err := os.ReadFile(filepath.Join(dir, "cursors", c.Name+".cursor"))
		switch {
		case errors.Is(err, os.ErrNotExist):
			c.Error = "missing"
		case err != nil:
			c.Error = err.Error()
		default:
			st, err := decodeCursor(b)
			if err != nil {
				c.Error = "torn"
			}
			c.Acked = st.acked
		}
	}
	slices.SortFunc(r.Cursors, func(a, b CursorReport) int { return strings.Compare(a.Name, b.Name) })
	return r, nil
}

// Inspect is Verify plus up to n records starting at sequence from (0 =
// the oldest), decoded from the segment files read-only.
func Inspect(dir string, from uint64, n int) (Report, error) {
	r, err := Verify(dir)
	if err != nil || n <= 0 {
		return r, err
	}
	for _, sg := range r.Segments {
		if sg.Last < from || sg.Last < sg.First {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, "wal", sg.Name))
		if err != nil {
			return r, err
		}
		for off := 0; off < len(data) && len(r.Records) < n; {
			e, fn, st := nextFrame(data[off:])
			if st != frameOK {
				break
			}
			off += fn
			if e.seq >= from {
				r.Records = append(r.Records, Record{
					ID: ID{Epoch: e.epoch, Seq: e.seq}, Time: time.Unix(0, e.time),
					Data: e.payload, Corrupt: e.corrupt,
				})
			}
		}
		if len(r.Records) >= n {
			break
		}
	}
	return r, nil
}

// isLocked reports whether another process holds dir's lock, without
// creating the lock file.
func isLocked(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "LOCK"))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return true
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// Scan calls fn for every record on disk appended at or after since, in
// order, until fn returns false. It reads segment files without touching
// any cursor; Data is valid only during the call (one buffer is reused).
func (s *Spool) Scan(since time.Time, fn func(Record) bool) error {
	s.mu.Lock()
	segs := slices.Clone(s.segs)
	last := s.last
	s.mu.Unlock()
	// Start at the last segment whose first record is older than since.
	start := 0
	for i, sg := range segs {
		if sg.last < sg.first {
			continue
		}
		if t := s.firstTime(sg); !t.IsZero() && t.Before(since) {
			start = i
		}
	}
	var buf []byte
	for _, sg := range segs[start:] {
		data, err := readFileInto(buf, sg.path)
		if err == nil && int64(len(data)) > sg.size {
			data = data[:sg.size] // bytes past the published size are not durable yet
		}
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // truncated meanwhile
			}
			return err
		}
		buf = data
		for off := 0; off < len(data); {
			e, n, st := nextFrame(data[off:])
			if st != frameOK || e.seq > last {
				break
			}
			off += n
			if e.time < since.UnixNano() {
				continue
			}
			if !fn(Record{ID: ID{Epoch: e.epoch, Seq: e.seq}, Time: time.Unix(0, e.time), Data: e.payload, Corrupt: e.corrupt}) {
				return nil
			}
		}
	}
	return nil
}

func (s *Spool) firstTime(sg segment) time.Time {
	f, err := os.Open(sg.path)
	if err != nil {
		return time.Time{}
	}
	defer f.Close()
	var h [10 + headerSize]byte
	n, _ := f.ReadAt(h[:], 0)
	_, vn := binary.Uvarint(h[:n])
	if vn <= 0 || n < vn+headerSize {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.LittleEndian.Uint64(h[vn+16:])))
}
