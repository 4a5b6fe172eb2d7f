package spool

import (
	"sync/atomic"
	"time"
)

type stats struct {
	commits, records, bytes    atomic.Uint64
	fsyncs, fsyncNanos         atomic.Uint64
	rejectedFull, dropped      atomic.Uint64
	writeErrors, repairs       atomic.Uint64
	quarantines, corruptions   atomic.Uint64
	readErrors                 atomic.Uint64
	truncations, truncateNanos atomic.Uint64
	cursorResets, lostRecords  atomic.Uint64
	gathers, gatherTimeouts    atomic.Uint64
}

// Stats are counters since Open plus the current shape of the spool.
type Stats struct {
	Appended       uint64  // records
	AppendedBytes  uint64  // on-disk bytes
	Commits        uint64  // group commits (one WriteBatch each)
	MeanCommitSize float64 // records per group commit
	Fsyncs         uint64
	FsyncTime      time.Duration // total
	RejectedFull   uint64        // appends refused at the cap
	Dropped        uint64        // records skipped by drop policies
	WriteErrors    uint64
	Repairs        uint64 // torn tails cut at Open
	Quarantines    uint64 // damaged closed-segment tails set aside
	Corruptions    uint64 // payload CRC failures and unreadable framing seen
	ReadErrors     uint64 // cursor reads that failed without damage (no file descriptor, EIO), retried
	LostRecords    uint64 // sequences noted lost to damage (lost.go), since Open
	Truncations    uint64
	TruncateTime   time.Duration // total
	CursorResets   uint64        // cursors restarted at the oldest record
	Gathers        uint64        // commits that waited for the writers of the round before (SyncAlways)
	GatherTimeouts uint64        // of those, how many stopped waiting before all came

	Segments     int
	DiskBytes    int64
	FirstSeq     uint64
	LastSeq      uint64
	BacklogBytes int64 // bytes between the slowest cursor and the tail
	MaxBytes     int64
	DiskError    string // last write failure while it lasts
}

// Stats returns a snapshot.
func (s *Spool) Stats() Stats {
	st := Stats{
		Appended:       s.st.records.Load(),
		AppendedBytes:  s.st.bytes.Load(),
		Commits:        s.st.commits.Load(),
		Fsyncs:         s.st.fsyncs.Load(),
		FsyncTime:      time.Duration(s.st.fsyncNanos.Load()),
		RejectedFull:   s.st.rejectedFull.Load(),
		Dropped:        s.st.dropped.Load(),
		WriteErrors:    s.st.writeErrors.Load(),
		Repairs:        s.st.repairs.Load(),
		Quarantines:    s.st.quarantines.Load(),
		Corruptions:    s.st.corruptions.Load(),
		ReadErrors:     s.st.readErrors.Load(),
		LostRecords:    s.st.lostRecords.Load(),
		Truncations:    s.st.truncations.Load(),
		TruncateTime:   time.Duration(s.st.truncateNanos.Load()),
		CursorResets:   s.st.cursorResets.Load(),
		Gathers:        s.st.gathers.Load(),
		GatherTimeouts: s.st.gatherTimeouts.Load(),
		MaxBytes:       s.opts.MaxBytes,
	}
	if st.Commits > 0 {
		st.MeanCommitSize = float64(st.Appended) / float64(st.Commits)
	}
	s.mu.Lock()
	st.Segments = len(s.segs)
	for _, sg := range s.segs {
		st.DiskBytes += sg.size
	}
	st.FirstSeq, st.LastSeq = s.segs[0].first, s.last
	st.BacklogBytes = s.tailPos - s.floorLocked()
	if s.diskErr != nil {
		st.DiskError = s.diskErr.Error()
	}
	s.mu.Unlock()
	return st
}
