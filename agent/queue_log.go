package agent

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// queueLog is a queue's durable state beside the spool: one record per
// pull (attempt counts), per acknowledgement batch and per dead letter,
// and now and then a checkpoint of everything that still matters, after
// which the older records are let go (the log's cursor skips to the
// checkpoint, and the log spool truncates behind it). It also holds the
// key that signs receipts, so that receipts stay verifiable across
// restarts (a receipt from before a restart is stale, not foreign).
type queueLog struct {
	sp   *spool.Spool
	cur  *spool.Cursor
	name string
	key  []byte
	macs sync.Pool // of hash.Hash: HMAC-SHA256 keyed with key, for reuse

	// Appends hold mu for reading; a checkpoint holds it for writing, so
	// that it sees every append that came before it applied in memory.
	mu    sync.RWMutex
	since atomic.Int64 // records appended since the last checkpoint

	// Attempt counts are written before the pull that makes them is
	// answered, without an fsync of their own (spool.AppendLazy): in the
	// OS's hands, so a crash of the process loses none; made durable by the
	// next acknowledgement's fsync (an fsync covers everything written to
	// the file before it) or the log's sync timer, so that they do not cost
	// an fsync stream of their own. A crash of the machine may lose the
	// counts of the last sync interval.
}

// attemptRec is one message's entry in the log.
type attemptRec struct {
	seq     uint64
	epoch   uint32
	attempt uint32
}

// logState is the queue state a log holds: messages resolved (seq ->
// epoch) and attempt counts of unresolved ones, above the spool cursor.
type logState struct {
	acked    map[uint64]uint32
	attempts map[uint64]attemptRec
	// through: every record at or below it (sequence, and an epoch no
	// later than its own) is resolved for the queue. A checkpoint keeps
	// it because the spool cursor, which says the same, is persisted
	// only every CursorSyncInterval: without it, a crash after a
	// checkpoint and before the cursor's next persist would forget the
	// acknowledgements the checkpoint superseded.
	through qpos
	// delays: messages nacked with a delay, until when (seq -> delay).
	delays map[uint64]delayRec
	// droppedAcked: acknowledged messages at or below the spool cursor
	// that a drop policy skipped it past (seq -> epoch), read back for the
	// queue's delivered-after-drop set: the ack may be all that says so.
	droppedAcked map[uint64]uint32
}

// delayRec is a nack's delay: the message (at the attempt the nack gave
// back) is not handed out before until.
type delayRec struct {
	seq     uint64
	epoch   uint32
	attempt uint32
	until   int64 // unix nanoseconds
}

// qpos is a record position: the spool's sequence and the epoch it was
// written in.
type qpos struct {
	seq   uint64
	epoch uint32
}

// covers reports whether a record at (seq, epoch) is at or below p. A
// sequence reused after a machine crash cut the spool's tail comes with a
// later epoch than p's, so it is not covered.
func (p qpos) covers(seq uint64, epoch uint32) bool {
	return seq <= p.seq && epoch <= p.epoch
}

// before reports whether a record at (seq, epoch) was appended after p:
// a later epoch (its sequence may be lower: a machine crash cut the tail
// and the sequences were used again), or the same epoch and a higher
// sequence.
func (p qpos) before(seq uint64, epoch uint32) bool {
	return epoch > p.epoch || epoch == p.epoch && seq > p.seq
}

// isAcked reports whether st holds the acknowledgement of the record at
// (seq, epoch) (or of a later one at seq). One of an earlier epoch is of
// a record a machine crash cut from the spool's tail: it is dropped, and
// the record at (seq, epoch) is another message, whose attempt counts and
// delays count.
func (st *logState) isAcked(seq uint64, epoch uint32) bool {
	ep, ok := st.acked[seq]
	if ok && ep < epoch {
		delete(st.acked, seq)
		return false
	}
	return ok
}

// Record types of the queue log.
const (
	qlogDelivered  = 'D'
	qlogAcked      = 'A'
	qlogNacked     = 'N'
	qlogCheckpoint = 'C' // resolved list, attempt list, then through (epoch, seq) and the delay list
)

func newLogState() logState {
	return logState{acked: map[uint64]uint32{}, attempts: map[uint64]attemptRec{}, delays: map[uint64]delayRec{}, droppedAcked: map[uint64]uint32{}}
}

// compactEvery is how many records the log takes before a checkpoint.
const compactEvery = 10000

// openQueueLog opens a queue's log and reads back its state above
// spoolAcked, the queue's cursor in the spool whose open has epoch epoch,
// and the acknowledgements at or below it of messages dropped says a drop
// skipped (droppedAcked).
// Entries of that epoch or later are of another spool that was in the
// directory (removed and created again, its epochs started over): they
// are let go, and a checkpoint without them is written, so that they do
// not come back at the next open.
func openQueueLog(sp *spool.Spool, name string, spoolAcked uint64, epoch uint32, dropped func(seq uint64) bool) (*queueLog, logState, error) {
	st := newLogState()
	c, err := sp.Cursor("state", spool.CursorOptions{FromOldest: true})
	if err != nil {
		return nil, st, fmt.Errorf("queue log: %w", err)
	}
	l := &queueLog{sp: sp, cur: c, name: name}
	if l.key, err = loadReceiptKey(filepath.Join(sp.Dir(), "receipt.key")); err != nil {
		c.Release()
		return nil, st, err
	}
	last := sp.LastSeq()
	n := 0
	for c.Acked() < last {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		recs, err := c.Read(ctx, 4096, 4<<20)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break // nothing readable up to last (a quarantined gap)
		}
		if err != nil {
			c.Release()
			return nil, st, fmt.Errorf("queue log %s: read: %w", name, err)
		}
		for _, r := range recs {
			if !r.Corrupt {
				st.apply(r.Data)
			}
			n++
		}
		if recs[len(recs)-1].ID.Seq >= last {
			break
		}
	}
	c.Rewind()
	stale := false
	for s, ep := range st.acked {
		if ep >= epoch {
			stale = true
		}
		if s <= spoolAcked || ep >= epoch {
			if ep < epoch && dropped(s) {
				st.droppedAcked[s] = ep
			}
			delete(st.acked, s)
		}
	}
	for s, r := range st.attempts {
		if r.epoch >= epoch {
			stale = true
		}
		if s <= spoolAcked || r.epoch >= epoch {
			delete(st.attempts, s)
		}
	}
	for s, r := range st.delays {
		if r.epoch >= epoch {
			stale = true
		}
		if s <= spoolAcked || r.epoch >= epoch {
			delete(st.delays, s)
		}
	}
	if st.through.epoch >= epoch {
		stale = true
	}
	if st.through.seq <= spoolAcked || st.through.epoch >= epoch {
		st.through = qpos{}
	}
	l.since.Store(int64(n))
	if stale {
		if err := l.compact(func() logState { return st }); err != nil {
			c.Release()
			return nil, st, fmt.Errorf("queue log: checkpoint without another spool's entries: %w", err)
		}
	}
	return l, st, nil
}

// apply replays one log record onto st.
func (st *logState) apply(b []byte) {
	if len(b) == 0 {
		return
	}
	d := decoder{b: b[1:]}
	switch b[0] {
	case qlogDelivered:
		for n := d.uvarint(); n > 0 && !d.err; n-- {
			r := attemptRec{epoch: uint32(d.uvarint()), seq: d.uvarint(), attempt: uint32(d.uvarint())}
			if !d.err && !st.isAcked(r.seq, r.epoch) {
				if old, ok := st.attempts[r.seq]; !ok || old.epoch != r.epoch || old.attempt < r.attempt {
					st.attempts[r.seq] = r
				}
				if dl, ok := st.delays[r.seq]; ok && (dl.epoch != r.epoch || dl.attempt < r.attempt) {
					delete(st.delays, r.seq) // delivered again: the delay is over
				}
			}
		}
	case qlogNacked:
		for n := d.uvarint(); n > 0 && !d.err; n-- {
			r := decodeDelay(&d)
			if !d.err && !st.isAcked(r.seq, r.epoch) {
				st.delays[r.seq] = r
			}
		}
	case qlogAcked:
		for n := d.uvarint(); n > 0 && !d.err; n-- {
			ep, seq := uint32(d.uvarint()), d.uvarint()
			if !d.err {
				st.acked[seq] = ep
				delete(st.attempts, seq)
				delete(st.delays, seq)
			}
		}
	case qlogCheckpoint:
		clear(st.acked)
		clear(st.attempts)
		clear(st.delays)
		for n := d.uvarint(); n > 0 && !d.err; n-- {
			ep, seq := uint32(d.uvarint()), d.uvarint()
			st.acked[seq] = ep
		}
		for n := d.uvarint(); n > 0 && !d.err; n-- {
			r := attemptRec{epoch: uint32(d.uvarint()), seq: d.uvarint(), attempt: uint32(d.uvarint())}
			st.attempts[r.seq] = r
		}
		st.through = qpos{}
		if len(d.b) > 0 && !d.err { // absent from checkpoints of earlier versions
			p := qpos{epoch: uint32(d.uvarint()), seq: d.uvarint()}
			if !d.err {
				st.through = p
			}
		}
		if len(d.b) > 0 && !d.err {
			for n := d.uvarint(); n > 0 && !d.err; n-- {
				if r := decodeDelay(&d); !d.err {
					st.delays[r.seq] = r
				}
			}
		}
	}
}

func appendDelays(b []byte, recs []delayRec) []byte {
	b = binary.AppendUvarint(b, uint64(len(recs)))
	for _, r := range recs {
		b = binary.AppendUvarint(b, uint64(r.epoch))
		b = binary.AppendUvarint(b, r.seq)
		b = binary.AppendUvarint(b, uint64(r.attempt))
		b = binary.AppendVarint(b, r.until)
	}
	return b
}

func decodeDelay(d *decoder) delayRec {
	r := delayRec{epoch: uint32(d.uvarint()), seq: d.uvarint(), attempt: uint32(d.uvarint())}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = true
		return r
	}
	d.b = d.b[n:]
	r.until = v
	return r
}

func encodeAttempts(typ byte, recs []attemptRec, withAttempt bool) []byte {
	b := make([]byte, 0, 1+10+len(recs)*16)
	b = append(b, typ)
	b = binary.AppendUvarint(b, uint64(len(recs)))
	for _, r := range recs {
		b = binary.AppendUvarint(b, uint64(r.epoch))
		b = binary.AppendUvarint(b, r.seq)
		if withAttempt {
			b = binary.AppendUvarint(b, uint64(r.attempt))
		}
	}
	return b
}

// delivered writes the attempt counts of a pull, to be answered next
// (see queueLog).
func (l *queueLog) delivered(recs []attemptRec) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	l.since.Add(1)
	_, err := l.sp.AppendLazy(context.Background(), encodeAttempts(qlogDelivered, recs, true))
	return err
}

// acked records messages as resolved, durably under the log's sync
// policy, then runs apply (nil = nothing) before a checkpoint can start.
// The attempt counts of the pulls a consumer saw are written before it,
// and its fsync covers them.
func (l *queueLog) acked(recs []attemptRec, apply func()) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	l.since.Add(1)
	if _, err := l.sp.Append(context.Background(), encodeAttempts(qlogAcked, recs, false)); err != nil {
		return err
	}
	if apply != nil {
		apply()
	}
	return nil
}

// nacked records nack delays, durably under the log's sync policy, behind
// the attempt counts of the deliveries they follow (written before their
// pulls were answered).
func (l *queueLog) nacked(recs []delayRec) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	l.since.Add(1)
	_, err := l.sp.Append(context.Background(), appendDelays([]byte{qlogNacked}, recs))
	return err
}

// maybeCompact writes a checkpoint of snapshot() once enough records
// accumulated, and lets the records before it go.
func (l *queueLog) maybeCompact(snapshot func() logState) error {
	if l.since.Load() < compactEvery {
		return nil
	}
	return l.compact(snapshot)
}

func (l *queueLog) compact(snapshot func() logState) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := snapshot()
	acked := make([]attemptRec, 0, len(st.acked))
	for s, ep := range st.acked {
		acked = append(acked, attemptRec{seq: s, epoch: ep})
	}
	b := encodeAttempts(qlogCheckpoint, acked, false)
	att := make([]attemptRec, 0, len(st.attempts))
	for _, r := range st.attempts {
		att = append(att, r)
	}
	b = append(b, encodeAttempts(0, att, true)[1:]...)
	b = binary.AppendUvarint(b, uint64(st.through.epoch))
	b = binary.AppendUvarint(b, st.through.seq)
	dls := make([]delayRec, 0, len(st.delays))
	for _, r := range st.delays {
		dls = append(dls, r)
	}
	b = appendDelays(b, dls)
	id, err := l.sp.Append(context.Background(), b)
	if err != nil {
		return err
	}
	if id.Seq > 1 {
		if _, err := l.cur.SkipTo(id.Seq-1, false); err != nil {
			return err
		}
	}
	l.since.Store(0)
	return nil
}

func (l *queueLog) close() error {
	l.cur.Release()
	return l.sp.Close()
}

// receipt is a parsed receipt: the lease it names.
type receipt struct {
	epoch   uint32
	seq     uint64
	attempt uint32
	gen     uint64
}

const receiptMACBytes = 12

// receipt renders a lease as an opaque token: version, epoch, sequence,
// attempt and lease generation, signed with the queue's key (HMAC-SHA256
// over the queue name and the fields, truncated), base64url.
func (l *queueLog) receipt(epoch uint32, seq uint64, attempt uint32, gen uint64) string {
	b := make([]byte, 0, 40)
	b = append(b, 1)
	b = binary.AppendUvarint(b, uint64(epoch))
	b = binary.AppendUvarint(b, seq)
	b = binary.AppendUvarint(b, uint64(attempt))
	b = binary.AppendUvarint(b, gen)
	b = append(b, l.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (l *queueLog) mac(b []byte) []byte {
	h, _ := l.macs.Get().(hash.Hash)
	if h == nil {
		h = hmac.New(sha256.New, l.key)
	}
	h.Reset()
	h.Write([]byte(l.name))
	h.Write([]byte{0})
	h.Write(b)
	var sum [sha256.Size]byte
	out := h.Sum(sum[:0])[:receiptMACBytes]
	l.macs.Put(h)
	return out
}

// parseReceipt verifies a receipt of this queue.
func (l *queueLog) parseReceipt(s string) (receipt, bool) {
	var r receipt
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 1+4+receiptMACBytes || b[0] != 1 {
		return r, false
	}
	body, sum := b[:len(b)-receiptMACBytes], b[len(b)-receiptMACBytes:]
	if !hmac.Equal(sum, l.mac(body)) {
		return r, false
	}
	d := decoder{b: body[1:]}
	r.epoch, r.seq, r.attempt, r.gen = uint32(d.uvarint()), d.uvarint(), uint32(d.uvarint()), d.uvarint()
	return r, !d.err && len(d.b) == 0
}

// loadReceiptKey reads the queue's signing key, creating it (written to a
// temporary file, fsynced, renamed, directory fsynced) when missing.
func loadReceiptKey(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil && len(b) == 32 {
		return b, nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("receipt key: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("receipt key: %w", err)
	}
	_, err = f.Write(key)
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(filepath.Dir(path)); err == nil {
			err = errors.Join(d.Sync(), d.Close())
		}
	}
	if err != nil {
		return nil, fmt.Errorf("receipt key: %w", err)
	}
	return key, nil
}

func randUint64() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) >> 8 // leave room to count up
}
