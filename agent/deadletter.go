package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sluiceio/sluice/spool"
)

// deadLetters is the dead-letter log: its own spool, capped with
// drop_oldest (the oldest dead letters go first, counted), plus an index by
// message id rebuilt from the log at start.
type deadLetters struct {
	sp  *spool.Spool
	cur *spool.Cursor // never acknowledged: keeps every dead letter until the cap
	m   *agentMetrics

	mu    sync.Mutex
	index *boundedMap[string, map[string]dlInfo]
	gone  map[uint64]bool // entries replayed or purged (tombstoned)

	// Forgotten dead letters (deadletter_forgotten.go).
	sinks      []string
	seqOf      func(id string) uint64 // spool sequence of a message id (upper bound)
	lastSeq    func() uint64          // the message spool's last sequence
	forgotUpTo map[string]uint64      // per sink
	forgotten  uint64
	dirty      bool // forgotUpTo changed since saved
	log        *slog.Logger
}

type dlInfo struct {
	reason string
	err    string
	time   time.Time
	dlSeq  uint64 // the entry's position in the dead-letter log
}

// dlIndexSize bounds the dead-letter index (a variable for tests).
var dlIndexSize = 100000

// openDeadLetters opens the log on sp and rebuilds its index; sinks are
// the configured sink names, msgs the message spool, seqOf the sequence of
// a message id (deadletter_forgotten.go).
func openDeadLetters(sp *spool.Spool, m *agentMetrics, log *slog.Logger, sinks []string, msgs *spool.Spool, seqOf func(string) uint64) (*deadLetters, error) {
	c, err := sp.Cursor("retained", spool.CursorOptions{FromOldest: true})
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	d := &deadLetters{sp: sp, cur: c, m: m, index: newBoundedMap[string, map[string]dlInfo](dlIndexSize), gone: map[uint64]bool{},
		sinks: sinks, seqOf: seqOf, lastSeq: msgs.LastSeq, forgotUpTo: map[string]uint64{}, log: log}
	if err := d.loadForgotten(); err != nil {
		c.Release()
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	last := sp.LastSeq()
	seen := 0
	entries := map[uint64][2]string{} // dl seq -> message id, sink
	for c.Acked() < last {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		recs, err := c.Read(ctx, 4096, 4<<20)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break // nothing readable up to last (a quarantined gap)
		}
		if err != nil {
			c.Release()
			return nil, fmt.Errorf("dead letters: read: %w", err)
		}
		for _, r := range recs {
			if e, ok := decodeDeadLetter(r.Data); ok {
				d.indexLocked(e.sink, e.id, dlInfo{reason: e.reason, err: e.err, time: e.time, dlSeq: r.ID.Seq})
				entries[r.ID.Seq] = [2]string{e.id, e.sink}
				seen++
			} else if action, seqs, ok := decodeTombstone(r.Data); ok {
				for _, s := range seqs {
					d.gone[s] = true
					if e, ok := entries[s]; ok && action == "replay" {
						d.unindexLocked(e[0], e[1], s) // pending again
					}
				}
			}
		}
		if recs[len(recs)-1].ID.Seq >= last {
			break
		}
	}
	c.Rewind()
	if seen > 0 {
		log.Info("dead-letter log loaded", "dead_letters", seen)
	}
	d.saveIfDirtyLocked()
	return d, nil
}

func (d *deadLetters) indexLocked(sinkName, id string, info dlInfo) {
	m, ok := d.index.get(id)
	if !ok {
		m = map[string]dlInfo{}
		if eid, einfo, evicted := d.index.putEvicted(id, m); evicted {
			d.evictedLocked(eid, einfo)
		}
	}
	m[sinkName] = info
}

// unindexLocked removes the index entry of id on sinkName if it is the
// dead letter at dlSeq: a message replayed and dead-lettered again (before
// or after the replay's tombstone) keeps its newer entry, and its dead
// letters on other sinks stay.
func (d *deadLetters) unindexLocked(id, sinkName string, dlSeq uint64) {
	if m, ok := d.index.get(id); ok && m[sinkName].dlSeq == dlSeq {
		delete(m, sinkName)
	}
}

type deadLetter struct {
	sink, id, reason, err string
	time                  time.Time
	raw                   []byte // the stored message record
}

// Bounds of a dead letter's envelope: the sink name (agent.New refuses
// longer names), the message id (validID; a local id is ~50 bytes), and the
// reason and error text, which encodeDeadLetter cuts to these lengths.
const (
	MaxSinkNameBytes   = 64
	maxIDBytes         = 128
	maxDLReasonBytes   = 64
	maxDLErrorBytes    = 1024
	maxDLLengthVarints = 4 * binary.MaxVarintLen32
)

// DeadLetterOverhead bounds what encodeDeadLetter adds to the stored
// message record: version, time, four length prefixes, sink, id, reason,
// error text. The dead-letter log's records and cap must leave this much
// beyond the largest message record (MaxRecordBytes), or a message the
// sink refuses could never leave its lane.
const DeadLetterOverhead = 1 + 8 + maxDLLengthVarints + MaxSinkNameBytes + maxIDBytes + maxDLReasonBytes + maxDLErrorBytes

// RecordSlack bounds a message record (appendMsg) beyond its value and
// the bytes that come from request headers (key, header names and values,
// callback URL, Idempotency-Key): version, time, partition, topic, id,
// sink names, length prefixes, the idempotency hash. 16 KiB covers 250
// sinks with 64 headers each; a record beyond MaxRecordBytes is refused at
// ingest (413), never stuck later.
const RecordSlack = 16 << 10

// MaxRecordBytes is the largest message record the agent spools for these
// limits: the main spool's MaxRecordBytes. A push whose record is larger is
// refused with 413 too_large.
func MaxRecordBytes(maxMessageBytes, maxHeaderBytes int) int {
	return maxMessageBytes + maxHeaderBytes + RecordSlack
}

// MaxDeadLetterBytes is the largest dead-letter record for these limits:
// the dead-letter spool's MaxRecordBytes must be at least this, and its cap
// at least this plus spool.RecordOverhead.
func MaxDeadLetterBytes(maxMessageBytes, maxHeaderBytes int) int {
	return MaxRecordBytes(maxMessageBytes, maxHeaderBytes) + DeadLetterOverhead
}

// cut shortens s to at most n bytes, on a UTF-8 boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func encodeDeadLetter(e deadLetter) []byte {
	e.reason, e.err = cut(e.reason, maxDLReasonBytes), cut(e.err, maxDLErrorBytes)
	b := make([]byte, 0, 64+len(e.sink)+len(e.id)+len(e.reason)+len(e.err)+len(e.raw))
	b = append(b, 1)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.time.UnixNano()))
	for _, s := range []string{e.sink, e.id, e.reason, e.err} {
		b = appendBytes(b, []byte(s))
	}
	return append(b, e.raw...)
}

func decodeDeadLetter(b []byte) (deadLetter, bool) {
	var e deadLetter
	if len(b) < 9 || b[0] != 1 {
		return e, false
	}
	e.time = time.Unix(0, int64(binary.LittleEndian.Uint64(b[1:])))
	d := decoder{b: b[9:]}
	e.sink, e.id, e.reason, e.err = string(d.bytes()), string(d.bytes()), string(d.bytes()), string(d.bytes())
	e.raw = d.b
	return e, !d.err
}

func (d *deadLetters) add(ctx context.Context, sinkName, id, reason, errText string, raw []byte) error {
	now := time.Now()
	dropped := d.sp.Stats().Dropped
	at, err := d.sp.Append(ctx, encodeDeadLetter(deadLetter{sink: sinkName, id: id, reason: reason, err: errText, time: now, raw: raw}))
	if err != nil {
		return err
	}
	d.mu.Lock()
	if n := d.sp.Stats().Dropped - dropped; n > 0 {
		d.discardedLocked(n, d.sinks) // the log discarded its oldest at the cap
	}
	d.indexLocked(sinkName, id, dlInfo{reason: reason, err: errText, time: now, dlSeq: at.Seq})
	d.saveIfDirtyLocked()
	d.mu.Unlock()
	d.m.deadLetter(sinkName, reason)
	return nil
}

func (d *deadLetters) saveIfDirtyLocked() {
	if !d.dirty {
		return
	}
	if err := d.saveForgottenLocked(); err != nil {
		d.log.Error("cannot save the dead-letter watermark; statuses stay right until a restart", "err", err)
		return
	}
	d.dirty = false
}

func (d *deadLetters) lookup(id string) map[string]dlInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, _ := d.index.get(id)
	out := make(map[string]dlInfo, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (d *deadLetters) close() error {
	d.cur.Release()
	return d.sp.Close()
}
