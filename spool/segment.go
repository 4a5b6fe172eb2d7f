package spool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// segFile is one tidwall/wal segment file: its name is the sequence of its
// first entry, zero-padded to 20 digits.
type segFile struct {
	first uint64
	path  string
	size  int64
}

func segmentName(first uint64) string { return fmt.Sprintf("%020d", first) }

// walFiles lists the segment directory the way tidwall/wal's load does:
// plain segments plus the .START / .END files of an interrupted truncation
// and .TEMP files of an interrupted atomic write.
type walFiles struct {
	segs  []segFile
	start string // path of a .START file, if any
	end   string // path of an .END file, if any
	temps []string
}

func listWAL(dir string) (walFiles, error) {
	var w walFiles
	des, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return w, nil
		}
		return w, fmt.Errorf("list segments: %w", err)
	}
	for _, de := range des {
		name := de.Name()
		if de.IsDir() || len(name) < 20 {
			continue
		}
		first, err := strconv.ParseUint(name[:20], 10, 64)
		if err != nil || first == 0 {
			continue
		}
		p := filepath.Join(dir, name)
		switch rest := name[20:]; rest {
		case "":
			info, err := de.Info()
			if err != nil {
				return w, fmt.Errorf("stat segment: %w", err)
			}
			w.segs = append(w.segs, segFile{first: first, path: p, size: info.Size()})
		case ".START":
			w.start = p
		case ".END":
			w.end = p
		default:
			if strings.HasSuffix(rest, ".TEMP") {
				w.temps = append(w.temps, p)
			}
		}
	}
	sort.Slice(w.segs, func(i, j int) bool { return w.segs[i].first < w.segs[j].first })
	return w, nil
}

// scanResult is what parsing one segment found.
type scanResult struct {
	marks    []offMark
	count    uint64   // valid entries (corrupt payloads included)
	validEnd int64    // offset after the last entry kept
	badAt    int64    // offset of the first invalid frame, -1 if none
	corrupt  []uint64 // sequences whose payload CRC failed, before validEnd
	lastTime int64
	epochMax uint32
}

// scanSegment walks the frames of one segment. The first entry must carry
// sequence first and each following one the next sequence. checkPayload
// verifies payload CRCs (always for the tail; closed segments are checked
// by readers). With trimCorruptTail, corrupt payloads that are not followed
// by a valid entry count as torn (a machine crash can leave zeros inside
// the unsynced tail) and are cut.
func scanSegment(data []byte, first uint64, checkPayload, trimCorruptTail bool) scanResult {
	r := scanResult{badAt: -1}
	var off int
	var pending []uint64 // corrupt entries after the last good one
	for off < len(data) {
		e, n, st := nextFrame(data[off:])
		if st != frameOK || e.seq != first+r.count {
			r.badAt = int64(off)
			break
		}
		if r.count%markEvery == 0 {
			r.marks = append(r.marks, offMark{e.seq, int64(off)})
		}
		r.count++
		off += n
		if e.epoch > r.epochMax {
			r.epochMax = e.epoch
		}
		if checkPayload && e.corrupt {
			pending = append(pending, e.seq)
			if !trimCorruptTail {
				r.corrupt = append(r.corrupt, pending...)
				pending = pending[:0]
				r.validEnd = int64(off)
			}
			continue
		}
		r.corrupt = append(r.corrupt, pending...)
		pending = pending[:0]
		r.validEnd = int64(off)
		r.lastTime = e.time
	}
	if len(pending) > 0 {
		r.count -= uint64(len(pending))
		if r.badAt < 0 {
			r.badAt = r.validEnd
		}
	}
	for len(r.marks) > 0 && r.marks[len(r.marks)-1].off >= r.validEnd {
		r.marks = r.marks[:len(r.marks)-1]
	}
	return r
}

// Quarantine records damage found in a closed segment.
type Quarantine struct {
	Segment     string // segment file name
	Offset      int64  // where the damaged framing starts
	Bytes       int64  // bytes moved to the quarantine directory
	LostRecords uint64 // sequences that cannot be read any more
	FirstLost   uint64 // the first of them
	File        string // where the bytes went ("" in a dry run)
}

// Recovery reports what opening (or verifying) a spool found and did.
type Recovery struct {
	Segments        int
	FirstSeq        uint64 // first sequence present (LastSeq+1 when empty)
	LastSeq         uint64
	TailCutBytes    int64        // torn or garbage bytes cut from the tail
	ZeroFillBytes   int64        // zeros a segment ended with where the previous run's zero-fill could have left them (SyncAlways): cut, not damage
	Quarantined     []Quarantine // damaged framing in closed segments
	CorruptRecords  []uint64     // payload CRC failures found in the tail segment
	RemovedTemp     int          // leftover temporary files of interrupted writes
	FinishedTruncat string       // "front" or "back" when an interrupted truncation was completed
	maxEpoch        uint32       // highest epoch of a record parsed
}

// Clean reports whether recovery found nothing to fix.
func (r Recovery) Clean() bool {
	return r.TailCutBytes == 0 && len(r.Quarantined) == 0 && len(r.CorruptRecords) == 0 &&
		r.RemovedTemp == 0 && r.FinishedTruncat == ""
}

// segment is the in-memory view of one segment of an open spool.
type segment struct {
	first uint64 // first sequence
	last  uint64 // last sequence (first-1 when empty)
	base  int64  // logical position of the segment's first byte
	size  int64  // bytes
	path  string
	marks []offMark // every markEvery-th record's file offset: a sparse index
}

// offMark is where record seq starts in its segment file.
type offMark struct {
	seq uint64
	off int64
}

// markEvery is the sparse index's step: finding a record reads at most this
// many records' bytes instead of its whole segment.
const markEvery = 128

// recoverWAL parses every segment and, unless dryRun, repairs the directory
// so that tidwall/wal opens it cleanly: it finishes an interrupted
// truncation like tidwall would, removes temporary files, quarantines
// damaged framing in closed segments and cuts the tail at its last valid
// entry. It returns the segments that remain.
// onLost (nil: none) is told the sequences a quarantine loses before the
// segment is cut.
func recoverWAL(dir, quarantineDir string, dryRun bool, zf zeroFillRule, onLost func(first, last uint64)) ([]segment, Recovery, error) {
	var rec Recovery
	w, err := listWAL(dir)
	if err != nil {
		return nil, rec, err
	}
	if w.start != "" && w.end != "" {
		return nil, rec, fmt.Errorf("recover: both %s and %s exist: %w", w.start, w.end, ErrCorrupt)
	}
	// An interrupted TruncateFront left a complete .START file: segments up
	// to it go, it becomes the first segment (tidwall's own rule).
	if w.start != "" {
		rec.FinishedTruncat = "front"
		keep, sf, err := finishTruncation(w.segs, w.start, ".START", func(first, at uint64) bool { return first <= at }, dryRun)
		if err != nil {
			return nil, rec, err
		}
		w.segs = append([]segFile{sf}, keep...)
	}
	// An interrupted TruncateBack left a complete .END file: segments from
	// it on go, it replaces the segment of the same name.
	if w.end != "" {
		rec.FinishedTruncat = "back"
		keep, sf, err := finishTruncation(w.segs, w.end, ".END", func(first, at uint64) bool { return first >= at }, dryRun)
		if err != nil {
			return nil, rec, err
		}
		w.segs = append(keep, sf)
	}
	for _, t := range w.temps {
		rec.RemovedTemp++
		if !dryRun {
			if err := os.Remove(t); err != nil {
				return nil, rec, fmt.Errorf("remove temp file: %w", err)
			}
		}
	}

	segs := make([]segment, 0, len(w.segs))
	var base int64
	var buf []byte // one buffer for every segment: start-up memory stays at one segment
	for i, sf := range w.segs {
		data, err := readFileInto(buf, sf.path)
		if dryRun && errors.Is(err, os.ErrNotExist) {
			continue // a live spool truncated it meanwhile
		}
		if err != nil {
			return nil, rec, fmt.Errorf("read segment %s: %w", filepath.Base(sf.path), err)
		}
		buf = data
		tail := i == len(w.segs)-1
		r := scanSegment(data, sf.first, tail, tail)
		rec.maxEpoch = max(rec.maxEpoch, r.epochMax)
		size := int64(len(data))
		if tail {
			rec.CorruptRecords = append(rec.CorruptRecords, r.corrupt...)
		}
		if zf.room(data, r.validEnd) && (tail || r.badAt >= 0 && w.segs[i+1].first == sf.first+r.count) {
			// Room zero-filled ahead of the records (see Options.Sync)
			// that a crash left in place (or a closed segment's, should
			// its cut not have been durable).
			rec.ZeroFillBytes += size - r.validEnd
			if !dryRun {
				if err := cutFile(sf.path, r.validEnd); err != nil {
					return nil, rec, err
				}
			}
			size = r.validEnd
		} else if tail {
			if r.validEnd < size {
				rec.TailCutBytes = size - r.validEnd
				if !dryRun {
					if err := cutFile(sf.path, r.validEnd); err != nil {
						return nil, rec, err
					}
				}
				size = r.validEnd
			}
		} else if r.badAt >= 0 {
			q := Quarantine{
				Segment:     filepath.Base(sf.path),
				Offset:      r.badAt,
				Bytes:       size - r.badAt,
				LostRecords: w.segs[i+1].first - (sf.first + r.count),
				FirstLost:   sf.first + r.count,
			}
			if !dryRun {
				if onLost != nil && q.LostRecords > 0 {
					onLost(q.FirstLost, q.FirstLost+q.LostRecords-1)
				}
				q.File, err = quarantine(quarantineDir, sf.path, data[r.badAt:], r.badAt)
				if err != nil {
					return nil, rec, err
				}
				if err := cutFile(sf.path, r.badAt); err != nil {
					return nil, rec, err
				}
			}
			rec.Quarantined = append(rec.Quarantined, q)
			size = r.badAt
		}
		segs = append(segs, segment{
			first: sf.first, last: sf.first + r.count - 1,
			base: base, size: size, path: sf.path, marks: r.marks,
		})
		base += size
	}
	if !dryRun && (w.start != "" || w.end != "" || rec.RemovedTemp > 0) {
		if err := syncDir(dir); err != nil {
			return nil, rec, err
		}
	}
	rec.Segments = len(segs)
	if len(segs) > 0 {
		rec.FirstSeq = segs[0].first
		rec.LastSeq = segs[len(segs)-1].last
	} else {
		rec.FirstSeq = 1
	}
	return segs, rec, nil
}

// zeroFillRule says what zero-filled room the run that wrote a spool could
// have left at the end of a segment: the tidwall/wal copy fills fill bytes
// past the end of a commit's records, at most to limit. Zeros that could
// not have come from there (a run that did not zero-fill, a size that no
// fill gives) are a torn tail, as before.
type zeroFillRule struct {
	fill, limit int64
}

// zeroFillSlack is how far past the segment size the tidwall/wal copy
// zero-fills (its limit: SegmentSize + 64 KiB).
const zeroFillSlack = 64 << 10

// room reports whether data[end:] is zero-filled room: all zeros, and the
// file's size what a fill made it, the limit or fill past the end of some
// record at or before end.
func (zf zeroFillRule) room(data []byte, end int64) bool {
	size := int64(len(data))
	if zf.fill <= 0 || end >= size || !allZero(data[end:]) {
		return false
	}
	if size == zf.limit {
		return true
	}
	at := size - zf.fill
	if at < 0 || at > end {
		return false
	}
	for off := int64(0); off < at; {
		_, n, st := nextFrame(data[off:end])
		if st != frameOK {
			return false
		}
		off += int64(n)
		if off > at {
			return false
		}
	}
	return true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// cutFile truncates path to size and makes that durable.
func cutFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("cut segment: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("cut segment: %w", classify(err))
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cut segment: %w", classify(err))
	}
	return f.Close()
}

// quarantine saves damaged bytes next to the spool for inspection.
func quarantine(dir, segPath string, data []byte, off int64) (string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("quarantine: %w", err)
	}
	name := filepath.Join(dir, fmt.Sprintf("%s.%d.bad", filepath.Base(segPath), off))
	if err := writeFileSync(name, data); err != nil {
		return "", fmt.Errorf("quarantine: %w", err)
	}
	return name, syncDir(dir)
}

// readFileInto reads a whole file into buf's storage, growing it when
// needed.
func readFileInto(buf []byte, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	n := int(info.Size())
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	// A live tail shrinks when it is cycled or closed (its zero-filled
	// room is cut): what is there is what counts.
	m, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	return buf[:m], nil
}

// chunk reads the part of seg that holds record seq: from the sparse index
// mark at or before it to the next mark (at most markEvery records). It
// returns the bytes and the sequence and file offset they start at.
func (seg segment) chunk(seq uint64) ([]byte, uint64, int64, error) {
	i := sort.Search(len(seg.marks), func(i int) bool { return seg.marks[i].seq > seq })
	from, off, end := seg.first, int64(0), seg.size
	if i > 0 {
		from, off = seg.marks[i-1].seq, seg.marks[i-1].off
	}
	if i < len(seg.marks) {
		end = seg.marks[i].off
	}
	f, err := os.Open(seg.path)
	if err != nil {
		return nil, 0, 0, err
	}
	defer f.Close()
	buf := make([]byte, end-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return nil, 0, 0, fmt.Errorf("read %s: %w", filepath.Base(seg.path), err)
	}
	return buf, from, off, nil
}

// finishTruncation completes an interrupted tidwall/wal truncation: the
// complete file path (named <first>+suffix) replaces the segments drop
// selects. In a dry run nothing is removed or renamed.
func finishTruncation(segs []segFile, path, suffix string, drop func(first, at uint64) bool, dryRun bool) ([]segFile, segFile, error) {
	at, _ := strconv.ParseUint(filepath.Base(path)[:20], 10, 64)
	var keep []segFile
	for _, s := range segs {
		if !drop(s.first, at) {
			keep = append(keep, s)
			continue
		}
		if !dryRun {
			if err := os.Remove(s.path); err != nil {
				return nil, segFile{}, fmt.Errorf("finish truncation: %w", err)
			}
		}
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, segFile{}, fmt.Errorf("finish truncation: %w", err)
	}
	final := path
	if !dryRun {
		final = strings.TrimSuffix(path, suffix)
		if err := os.Rename(path, final); err != nil {
			return nil, segFile{}, fmt.Errorf("finish truncation: %w", err)
		}
	}
	return keep, segFile{first: at, path: final, size: info.Size()}, nil
}
