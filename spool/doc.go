// Package spool is sluice's durable write-ahead log: many concurrent
// appenders, group commit, named cursors (one per sink), a byte cap with a
// full policy, batched front truncation, and repair of whatever a crash or
// a bad disk left behind. It stores opaque bytes; message encoding belongs
// to the agent.
//
// # Usage
//
//	s, err := spool.Open(dir, spool.Options{}) // zero value = defaults
//	defer s.Close()
//	id, err := s.Append(ctx, payload)          // returns when durable
//	b := spool.NewBatch(n, bytes)              // or encode in place, no copy:
//	b.End(appendRecord(b.Begin(), msg))        //   once per record
//	first, err := s.AppendBatch(ctx, b)
//	p, err := s.AppendAsync(ctx, b)            // or queue, then wait:
//	first, err = p.Wait(ctx)                   //   ErrTimeout = outcome unknown,
//	first, err = p.Outcome()                   //   which Outcome still learns
//	c, err := s.Cursor("kafka", spool.CursorOptions{})
//	recs, err := c.Read(ctx, 1000, 1<<20)      // blocks for durable records
//	err = c.Ack(recs[len(recs)-1].ID.Seq)
//	c.ReuseBuffer()                            // records valid until the next Read
//	err = s.WaitAfter(ctx, seq)                // a record above seq is durable
//
// A batch's buffer goes back to a pool once the commit goroutine has copied
// it into the WAL's batch. The WAL is tidwall/wal v1.2.1 with two patches
// (third_party/tidwall/wal/PATCHES.md); the on-disk format of its closed
// segments is upstream's.
//
// # On-disk layout
//
//	DIR/LOCK                 flock: one process per spool
//	DIR/meta                 JSON: random spool id, open epoch, cursor registry,
//	                         how this open zero-fills (zero_fill, segment_bytes)
//	DIR/reserve              64 KiB released to open on a full disk
//	DIR/wal/<20-digit seq>   tidwall/wal segments, named by first sequence
//	DIR/cursors/<name>.cursor  two 4 KiB slots, each a generation, the
//	                         acknowledged sequence + recent drops, CRC32C
//	DIR/quarantine/          damaged bytes set aside by recovery
//
// Every WAL entry is a tidwall/wal frame (uvarint length) holding a 36-byte
// envelope — magic, version, epoch, sequence, append time, payload length,
// CRC32C of the payload, CRC32C of the header — and the payload. The
// sequence equals the WAL index. Metadata files are written with temp
// file, fsync, rename, directory fsync. A cursor file is written so once
// per Open (and after a failed write); its later persists write the slot
// that does not hold the last durable state in place and fdatasync: no
// metadata write, every CursorSyncInterval, beside the WAL's fsyncs. A
// crash in the middle of one leaves the other slot whole. The newer slot
// may be one whose fdatasync failed, still in the page cache of a machine
// that did not reboot: at Open a cursor starts at the newer slot, but
// truncation goes by the older one until the first persist.
//
// Under SyncAlways the open tail segment is zero-filled ahead of its
// records (1 MiB past the end of a commit's records at a time, at most to
// SegmentBytes + 64 KiB), so that each commit's fsync writes over blocks
// the file already has: on ext4 that is two device writes instead of
// three. The zeros are cut when the segment is cycled or the spool closed;
// after a crash, recovery cuts them (Recovery.ZeroFillBytes). A live spool
// takes up to SegmentBytes + 64 KiB more disk than its records.
//
// # Guarantees
//
//   - Append returns nil only when its records are durable under the sync
//     policy: SyncAlways waits for the fsync of the group commit that holds
//     them (and the directory fsync when the commit created a segment);
//     SyncInterval and SyncNever return once the OS has the bytes. One
//     goroutine owns the WAL and writes everything that is waiting with one
//     WriteBatch and one fsync. AppendLazy is the exception it names: its
//     records are written at once but, under SyncAlways, fsynced with the
//     next ordinary append or SyncInterval later; readers may see them
//     before that. With Options.SyncVia a spool's fsyncs run in another
//     spool's commit rounds, beside that spool's own; an append still
//     returns after the fsync of its own file.
//   - Readers never see a record before it is durable under the policy, and
//     never a half-written one.
//   - IDs (epoch, sequence) are unique forever for a spool: the epoch is
//     incremented and fsynced at every Open, so a sequence reused after a
//     machine crash cut an unsynced tail gets a new epoch.
//   - A cursor advances only by Ack (or an explicit, counted drop). Its
//     position is persisted every CursorSyncInterval and at Close; a crash
//     re-delivers what was acknowledged since. A cursor file that is
//     missing or torn restarts that cursor at the oldest record, reported.
//     Cursors the agent no longer opens are kept (and hold their records)
//     until RemoveCursor. A cursor created at the tail remembers the last
//     record before it (Born): it never saw those. Cursor files are
//     "SLC3"; "SLC2" and "SLC1" (born 0) files of earlier versions are
//     read. An earlier version finds an "SLC3" file torn and restarts that
//     cursor at the oldest record (re-delivery, never a skip).
//   - Only segments that every cursor has passed, as persisted, are
//     truncated — in batches of TruncateSegments, never the tail. The last
//     of a batch keeps its last record (tidwall/wal rewrites the segment
//     that holds the truncation index; this makes that rewrite one record).
//   - At MaxBytes of backlog, Reject fails appends with ErrFull; DropOldest
//     advances the slowest cursors and counts the records they lost.
//
// # Failures
//
//   - Torn, zero-filled or garbage tail (crash mid-write): Open cuts the last
//     segment at its last valid entry and reports the bytes cut, except
//     zeros where the previous open's zero-fill could have left them (meta
//     says how it filled; the file's size is what a fill gives): those are
//     room, reported apart and not as damage. Under SyncAlways, records of
//     AppendLazy (never promised durable) that a machine crash lost inside
//     that room read as room too.
//   - Damaged framing inside a closed segment: Open moves the rest of that
//     segment to quarantine/, counts the sequences lost, and keeps the
//     records before and after it.
//   - Damaged framing found by a read after Open (Cursor.Read, ReadFrom):
//     the rest of that segment is skipped, counted, and reading goes on
//     with the next. Records lost either way are noted (Spool.Lost,
//     lost.go), so that a cursor moving past them is not taken for their
//     delivery.
//   - Damaged payload (CRC mismatch) with intact framing: kept, and handed
//     to the reader with Record.Corrupt so the agent can dead-letter it.
//   - Write or fsync failure (ENOSPC → ErrDiskFull, else ErrIO): the batch
//     fails, the tidwall/wal handle is closed, the files are cut back to the
//     last published record and reopened; a failed fsync is never retried.
//     Appends succeed again once the disk does.
//
// The kill -9 test (TestKill9) proves that acknowledged records survive
// process crashes with SyncAlways. It cannot prove survival of power loss
// or kernel crashes: the page cache outlives a killed process, and whether
// fsync reaches stable media depends on the disk and its write cache.
package spool
