package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// The durable Idempotency-Key index.
//
// A key is written with its request's first message, in the same append
// (one durable step: if the message is acknowledged, so is its key). A
// copier reads the main spool through its own cursor and copies every key
// it finds, with the request's ids, into a small spool of its own
// (<SPOOL_DIR>/idempotency) in push order; it acknowledges its cursor only
// once that copy is durable (the index store always fsyncs). The main spool
// truncates only what every cursor has passed, as persisted, so at any
// instant each key within the window is in the index store, or still in the
// main spool past the copier's cursor, or both. Start-up loads both. The
// copier's cursor is never far behind the tail (it decodes only records
// that carry optional fields), so it does not pin the WAL for longer than a
// copy takes; when the index store keeps failing it gives the copy up
// (counted, logged) rather than hold the spool.
//
// Expiry: a cursor on the index store is acknowledged up to the last entry
// older than the window; the store truncates the segments it passed. The
// store is capped (drop_oldest, counted as evictions).

// idemCopierCursor cannot clash with a sink name ([a-z0-9]+).
const idemCopierCursor = "idempotency.copier"

// IdempotencyStoreDir is where the agent keeps its Idempotency-Key index,
// inside the spool directory, when Options.Idempotency is not set.
const IdempotencyStoreDir = "idempotency"

// IdempotencyStoreOptions are the spool options of the index store for
// maxKeys keys: always fsynced (one fsync per copied batch, off the request
// path, only when keys were pushed), small segments so that expiry truncates
// often, capped with drop_oldest.
func IdempotencyStoreOptions(maxKeys int, log *slog.Logger) spool.Options {
	if maxKeys <= 0 {
		maxKeys = 100000
	}
	return spool.Options{
		SegmentBytes: 256 << 10,
		Sync:         spool.SyncAlways,
		MaxBytes:     max(int64(maxKeys)*1024, 8<<20),
		FullPolicy:   spool.DropOldest,
		Logger:       log,
	}
}

// idemRecord is one index entry: a key and what its request became.
type idemRecord struct {
	key  string
	hash []byte // sha256 of the request
	ids  []string
	at   time.Time // push time
	// first is the position of the request's first record in the main
	// spool (its records are consecutive); zero when an entry of an earlier
	// version did not say (mode 1).
	first spool.ID
}

// Entry layout: version 1, push time (8), key, hash, id count, then mode 0
// (ids are the spool's own: spool id, epoch (4), first sequence), mode 2
// (the first record's epoch (4) and sequence, then every id,
// length-prefixed: kept (chained) ids name no position) or, written by
// earlier versions, mode 1 (every id, without the position).
func encodeIdemRecord(e idemRecord, spoolID string, first spool.ID) []byte {
	b := make([]byte, 0, 64+len(e.key)+len(spoolID))
	b = append(b, 1)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.at.UnixNano()))
	b = appendBytes(b, []byte(e.key))
	b = appendBytes(b, e.hash)
	b = binary.AppendUvarint(b, uint64(len(e.ids)))
	own := first.Seq > 0
	for i := 0; own && i < len(e.ids); i++ {
		own = e.ids[i] == formatID(spoolID, spool.ID{Epoch: first.Epoch, Seq: first.Seq + uint64(i)})
	}
	if own {
		b = append(b, 0)
		b = appendBytes(b, []byte(spoolID))
		b = binary.LittleEndian.AppendUint32(b, first.Epoch)
		return binary.AppendUvarint(b, first.Seq)
	}
	if first.Seq > 0 {
		b = append(b, 2)
		b = binary.LittleEndian.AppendUint32(b, first.Epoch)
		b = binary.AppendUvarint(b, first.Seq)
	} else {
		b = append(b, 1)
	}
	for _, id := range e.ids {
		b = appendBytes(b, []byte(id))
	}
	return b
}

func decodeIdemRecord(b []byte) (idemRecord, error) {
	var e idemRecord
	if len(b) < 9 || b[0] != 1 {
		return e, errBadRecord
	}
	e.at = time.Unix(0, int64(binary.LittleEndian.Uint64(b[1:])))
	d := decoder{b: b[9:]}
	e.key = string(d.bytes())
	e.hash = bytes.Clone(d.bytes())
	n := d.uvarint()
	if d.err || len(d.b) == 0 || n == 0 || n > 1<<24 {
		return e, errBadRecord
	}
	mode := d.b[0]
	d.b = d.b[1:]
	switch mode {
	case 0:
		sid := string(d.bytes())
		if d.err || len(d.b) < 4 {
			return e, errBadRecord
		}
		epoch := binary.LittleEndian.Uint32(d.b)
		d.b = d.b[4:]
		first := d.uvarint()
		e.first = spool.ID{Epoch: epoch, Seq: first}
		e.ids = make([]string, n)
		for i := range e.ids {
			e.ids[i] = formatID(sid, spool.ID{Epoch: epoch, Seq: first + uint64(i)})
		}
	case 1, 2:
		if mode == 2 {
			if len(d.b) < 4 {
				return e, errBadRecord
			}
			e.first.Epoch = binary.LittleEndian.Uint32(d.b)
			d.b = d.b[4:]
			if e.first.Seq = d.uvarint(); e.first.Seq == 0 {
				d.err = true
			}
		}
		if n > uint64(len(d.b)) { // each id takes at least its length byte
			return e, errBadRecord
		}
		for i := uint64(0); i < n && !d.err; i++ {
			e.ids = append(e.ids, string(d.bytes()))
		}
	default:
		return e, errBadRecord
	}
	if d.err || len(d.b) != 0 || len(e.hash) != sha256.Size || e.key == "" {
		return e, errBadRecord
	}
	return e, nil
}

// idemParser finds the keyed requests in a run of main-spool records: the
// first message of such a request carries the key, the hash and the number
// of messages, which follow it in consecutive records.
type idemParser struct {
	spoolID string
	cur     *idemRecord
	first   spool.ID  // ID of cur's first record
	time    time.Time // its append time
	want    int
}

// feed takes the next record in sequence. It returns a request once its
// last record was fed.
func (p *idemParser) feed(r spool.Record) (done *idemRecord, first spool.ID) {
	if p.cur == nil && !hasExtras(r.Data) {
		return nil, spool.ID{} // the common case: no key, nothing to decode
	}
	if p.cur != nil && (r.ID.Seq != p.first.Seq+uint64(len(p.cur.ids)) || r.ID.Epoch != p.first.Epoch || !r.Time.Equal(p.time)) {
		// Not the next record of the same append (one append = one
		// epoch, one append time, consecutive sequences): a drop policy
		// skipped records, or a crash cut the request's tail.
		p.cur = nil
		if !hasExtras(r.Data) {
			return nil, spool.ID{}
		}
	}
	var m Msg
	if r.Corrupt || decodeMsg(r.Data, &m) != nil {
		p.cur = nil // a damaged request is not replayed
		return nil, spool.ID{}
	}
	id := m.ID
	if id == "" {
		id = formatID(p.spoolID, r.ID)
	}
	if p.cur == nil {
		if m.IdemKey == "" || len(m.IdemHash) < sha256.Size {
			return nil, spool.ID{}
		}
		n, vn := binary.Uvarint(m.IdemHash[sha256.Size:])
		if vn <= 0 || n == 0 {
			return nil, spool.ID{}
		}
		p.cur = &idemRecord{key: m.IdemKey, hash: bytes.Clone(m.IdemHash[:sha256.Size]), at: time.Unix(0, m.Time)}
		p.first, p.time, p.want = r.ID, r.Time, int(n)
	}
	p.cur.ids = append(p.cur.ids, id)
	if len(p.cur.ids) < p.want {
		return nil, spool.ID{}
	}
	done, p.cur = p.cur, nil
	return done, p.first
}

// open reports whether a request was started and not finished: its first
// record must stay unacknowledged.
func (p *idemParser) open() (spool.ID, bool) { return p.first, p.cur != nil }

// idemStore is the durable side of the index.
type idemStore struct {
	main   *spool.Spool
	sp     *spool.Spool  // the index store
	copier *spool.Cursor // on main
	expiry *spool.Cursor // on sp
	window time.Duration
	log    *slog.Logger
	parser idemParser

	// Keyed appends, so that the copier reads the spool only when keys
	// may be there (see canSkip).
	keyedInflight atomic.Int64  // keyed appends whose outcome is not known
	keyedMax      atomic.Uint64 // last record of a committed keyed append
	readPos       uint64        // copier goroutine: last record read or skipped

	// turned: unix nanoseconds of the copier's last turn; unpinned: the
	// pin gave up on a stuck copier (logged once per stall).
	turned   atomic.Int64
	unpinned atomic.Bool

	copied     atomic.Uint64 // entries written to the index store
	copyFailed atomic.Uint64 // entries given up after the store kept failing
	expired    atomic.Uint64
}

func openIdemStore(main, sp *spool.Spool, window time.Duration, log *slog.Logger) (*idemStore, error) {
	st := &idemStore{main: main, sp: sp, window: window, log: log, parser: idemParser{spoolID: main.SpoolID()}}
	// A drop_oldest drop must not take a keyed record before the copier
	// made its key durable in the index and acknowledged it (its key
	// would be lost at a restart, or at a kill -9 during the copy): such an
	// append is refused (503 spool_full) until then, a tick and an index
	// fsync. Unkeyed records are dropped as before.
	// The pin lasts while the copier goes round (each turn reads, copies
	// and acknowledges, or waits a tick), pinBound at most after its last
	// turn: a copier stuck for any reason must not hold a drop_oldest
	// spool for good (a drop then may lose a key: a retry after a restart
	// is stored again).
	pin := func(next uint64) bool {
		if st.keyedInflight.Load() == 0 && st.keyedMax.Load() < next {
			return false
		}
		if time.Since(time.Unix(0, st.turned.Load())) <= pinBound {
			return true
		}
		if st.unpinned.CompareAndSwap(false, true) {
			st.log.Error("idempotency copier stuck: drops under drop_oldest no longer wait for it; keys it has not copied are lost at a restart", "stuck_for", pinBound)
		}
		return false
	}
	st.turned.Store(time.Now().UnixNano())
	st.keyedMax.Store(main.LastSeq()) // records from before this start are read, keys or not
	c, err := main.Cursor(idemCopierCursor, spool.CursorOptions{FromOldest: true, Pin: pin})
	if err != nil {
		return nil, fmt.Errorf("idempotency copier: %w", err)
	}
	x, err := sp.Cursor("expiry", spool.CursorOptions{FromOldest: true})
	if err != nil {
		c.Release()
		return nil, fmt.Errorf("idempotency index: %w", err)
	}
	st.copier, st.expiry, st.readPos = c, x, c.Acked()
	return st, nil
}

// appending is called before a keyed append is queued; appended once its
// outcome is known, with its last record (0 when it was not written).
func (st *idemStore) appending() { st.keyedInflight.Add(1) }

func (st *idemStore) appended(last uint64) {
	for cur := st.keyedMax.Load(); last > cur && !st.keyedMax.CompareAndSwap(cur, last); cur = st.keyedMax.Load() {
	}
	st.keyedInflight.Add(-1)
}

// canSkip returns a sequence up to which the spool holds no record with a
// key past the copier's position, or 0. The order of the loads is the
// proof: a keyed record at or below last was committed before last was
// read; its append is then still counted in flight, or it already raised
// keyedMax (before it left the count). An append counted after the check
// is queued after last was read, so its records lie beyond last.
func (st *idemStore) canSkip() uint64 {
	last := st.main.LastSeq()
	if !st.caughtUp() || last <= st.readPos {
		return 0
	}
	return last
}

// caughtUp: every keyed record committed so far has been read.
func (st *idemStore) caughtUp() bool {
	return st.keyedInflight.Load() == 0 && st.keyedMax.Load() <= st.readPos
}

// openIdemSpool opens the index store in the main spool's directory.
func openIdemSpool(main *spool.Spool, maxKeys int, log *slog.Logger) (*spool.Spool, error) {
	return spool.Open(filepath.Join(main.Dir(), IdempotencyStoreDir), IdempotencyStoreOptions(maxKeys, log.With("spool", "idempotency")))
}

// readAll calls fn for every record of c from its acknowledged position to
// the spool's last record at the time of the call, then rewinds c.
func readAll(c *spool.Cursor, last uint64, fn func(spool.Record)) error {
	defer c.Rewind()
	for c.Acked() < last {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		recs, err := c.Read(ctx, 4096, 4<<20)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return nil // nothing readable up to last (a quarantined gap)
		}
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.ID.Seq <= last {
				fn(r)
			}
		}
		if recs[len(recs)-1].ID.Seq >= last {
			return nil
		}
	}
	return nil
}

// load puts every key within the window into x: first the index store,
// then what the copier has not copied yet (newer: it wins).
func (st *idemStore) load(x *idempotency, now time.Time) error {
	n, cut := 0, 0
	err := readAll(st.expiry, st.sp.LastSeq(), func(r spool.Record) {
		e, err := decodeIdemRecord(r.Data)
		if r.Corrupt || err != nil || now.Sub(e.at) > st.window {
			return
		}
		if st.cut(e) {
			x.forget(e.key)
			cut++
			return
		}
		x.loaded(e)
		n++
	})
	if cut > 0 {
		st.log.Warn("idempotency keys of pushes a machine crash cut from the spool's tail forgotten: a retry with one is stored again", "keys", cut)
	}
	if err != nil {
		return fmt.Errorf("idempotency index: %w", err)
	}
	p := idemParser{spoolID: st.main.SpoolID()}
	err = readAll(st.copier, st.main.LastSeq(), func(r spool.Record) {
		if e, _ := p.feed(r); e != nil && now.Sub(e.at) <= st.window {
			x.loaded(*e)
			n++
		}
	})
	if err != nil {
		return fmt.Errorf("idempotency keys in the spool: %w", err)
	}
	if n > 0 {
		st.log.Info("idempotency keys loaded", "keys", n)
	}
	return nil
}

// cut reports whether e's records were cut by a machine crash from the
// main spool's tail (spool.Cut): a push with its key must be stored again,
// not answered with ids the spool no longer holds. A request's records are
// consecutive, of one append, and a cut takes a suffix: its first and last
// record tell. The ids handed out do not: one kept from the request
// (chained) names another position, or none here. An entry of an earlier
// version that did not say where its records are is taken as not cut.
func (st *idemStore) cut(e idemRecord) bool {
	if e.first.Seq == 0 || len(e.ids) == 0 {
		return false
	}
	last := spool.ID{Epoch: e.first.Epoch, Seq: e.first.Seq + uint64(len(e.ids)) - 1}
	return st.main.Cut(e.first) || st.main.Cut(last)
}

// pinBound is the longest the copier's pin holds a drop after its last
// turn: beyond the 5 s a failing index store is retried before the copy
// is given up, and that store's own append timeout. Tests replace it.
var pinBound = 15 * time.Second

// runCopier copies keys from the main spool to the index store until ctx
// is done.
func (st *idemStore) runCopier(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		st.turned.Store(time.Now().UnixNano())
		st.unpinned.Store(false)
		// Traffic without keys is skipped, not read: the copier costs
		// nothing then, and holds the spool for at most one tick.
		if upTo := st.canSkip(); upTo > 0 {
			if _, err := st.copier.SkipTo(upTo, false); err == nil {
				st.readPos = upTo
			}
		}
		if _, open := st.parser.open(); open && st.readPos >= st.main.LastSeq() {
			// A request still open with the spool read to its end never
			// completes: an append's records become readable together,
			// so a crash cut its tail. Let it go now, also while other
			// keyed appends are in flight: the Read below would wait for a
			// record that never comes, its first record acknowledged
			// never, and the pin on it (a drop_oldest spool) hold for good.
			st.parser.cur = nil
			_ = st.copier.Ack(st.readPos)
		}
		if st.caughtUp() {
			// A request still open now never completes (a crash cut
			// its tail): every keyed record was read.
			if _, open := st.parser.open(); open {
				st.parser.cur = nil
				_ = st.copier.Ack(st.readPos)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			continue
		}
		recs, err := st.copier.Read(ctx, 4096, 4<<20)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, spool.ErrClosed) {
				return
			}
			// The spool could not be read (no file descriptor free,
			// EIO): nothing moved; try again at the next tick.
			st.log.Error("idempotency index: read spool", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			continue
		}
		st.readPos = recs[len(recs)-1].ID.Seq
		var entries [][]byte
		now := time.Now()
		for _, r := range recs {
			if e, first := st.parser.feed(r); e != nil && now.Sub(e.at) <= st.window {
				entries = append(entries, encodeIdemRecord(*e, st.main.SpoolID(), first))
			}
		}
		if len(entries) > 0 && !st.store(ctx, entries) {
			return
		}
		ack := recs[len(recs)-1].ID.Seq
		if first, open := st.parser.open(); open {
			ack = first.Seq - 1 // the request's first record waits for its last
		}
		if ack > 0 {
			_ = st.copier.Ack(ack)
		}
	}
}

// store appends entries durably. It retries a failing store for a few
// seconds, then gives the entries up (counted): keys stay in memory, but a
// failing index must not hold the main spool. It returns false when ctx
// ended first.
func (st *idemStore) store(ctx context.Context, entries [][]byte) bool {
	deadline := time.Now().Add(5 * time.Second)
	backoff := 50 * time.Millisecond
	for {
		_, err := st.sp.Append(ctx, entries...)
		if err == nil {
			st.copied.Add(uint64(len(entries)))
			return true
		}
		if ctx.Err() != nil || errors.Is(err, spool.ErrClosed) {
			return false
		}
		if errors.Is(err, spool.ErrTooLarge) || time.Now().After(deadline) {
			st.copyFailed.Add(uint64(len(entries)))
			st.log.Error("idempotency index: cannot store keys; they are kept in memory only (forgotten at restart)",
				"keys", len(entries), "err", err)
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// runExpiry acknowledges expired entries of the index store so that it
// truncates them, every tick, until ctx is done.
func (st *idemStore) runExpiry(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st.expire(time.Now())
	}
}

// expire acknowledges the leading entries older than the window.
func (st *idemStore) expire(now time.Time) {
	defer st.expiry.Rewind()
	for st.expiry.Acked() < st.sp.LastSeq() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		recs, err := st.expiry.Read(ctx, 4096, 4<<20)
		cancel()
		if err != nil {
			return
		}
		n := 0
		for _, r := range recs {
			if e, err := decodeIdemRecord(r.Data); !r.Corrupt && err == nil && now.Sub(e.at) <= st.window {
				break
			}
			n++
		}
		if n == 0 {
			return
		}
		_ = st.expiry.Ack(recs[n-1].ID.Seq)
		st.expired.Add(uint64(n))
		if n < len(recs) {
			return
		}
	}
}

// evicted is what the store's cap discarded (persisted across restarts).
func (st *idemStore) evicted() uint64 { return st.expiry.DroppedTotal() }

func (st *idemStore) close() error {
	st.copier.Release()
	st.expiry.Release()
	return st.sp.Close()
}
