package agent

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"time"

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
}

type dlInfo struct {
	reason string
	err    string
	time   time.Time
}

const dlIndexSize = 100000

func openDeadLetters(sp *spool.Spool, m *agentMetrics, log *slog.Logger) (*deadLetters, error) {
	c, err := sp.Cursor("retained", spool.CursorOptions{FromOldest: true})
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	d := &deadLetters{sp: sp, cur: c, m: m, index: newBoundedMap[string, map[string]dlInfo](dlIndexSize), gone: map[uint64]bool{}}
	last := sp.LastSeq()
	seen := 0
	entries := map[uint64][2]string{} // dl seq -> message id, sink
	var replayed []uint64
	for c.Acked() < last {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		recs, err := c.Read(ctx, 4096, 4<<20)
		cancel()
		if err != nil {
			break
		}
		for _, r := range recs {
			if e, ok := decodeDeadLetter(r.Data); ok {
				d.indexLocked(e.sink, e.id, dlInfo{reason: e.reason, err: e.err, time: e.time})
				entries[r.ID.Seq] = [2]string{e.id, e.sink}
				seen++
			} else if action, seqs, ok := decodeTombstone(r.Data); ok {
				for _, s := range seqs {
					d.gone[s] = true
					if action == "replay" {
						replayed = append(replayed, s)
					}
				}
			}
		}
		if recs[len(recs)-1].ID.Seq >= last {
			break
		}
	}
	c.Rewind()
	for _, s := range replayed { // replayed messages are pending again
		if e, ok := entries[s]; ok {
			if m, ok := d.index.get(e[0]); ok {
				delete(m, e[1])
			}
		}
	}
	if seen > 0 {
		log.Info("dead-letter log loaded", "dead_letters", seen)
	}
	return d, nil
}

func (d *deadLetters) indexLocked(sinkName, id string, info dlInfo) {
	m, ok := d.index.get(id)
	if !ok {
		m = map[string]dlInfo{}
		d.index.put(id, m)
	}
	m[sinkName] = info
}

type deadLetter struct {
	sink, id, reason, err string
	time                  time.Time
	raw                   []byte // the stored message record
}

func encodeDeadLetter(e deadLetter) []byte {
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
	if _, err := d.sp.Append(ctx, encodeDeadLetter(deadLetter{sink: sinkName, id: id, reason: reason, err: errText, time: now, raw: raw})); err != nil {
		return err
	}
	d.mu.Lock()
	d.indexLocked(sinkName, id, dlInfo{reason: reason, err: errText, time: now})
	d.mu.Unlock()
	d.m.deadLetter(sinkName, reason)
	return nil
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
