package agent

import (
	"encoding/binary"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// The callback store is a spool of its own (<SPOOL_DIR>/callbacks) with
// two kinds of records:
//
//	report    1, epoch u32, seq u64, pushed unix-nano i64, id, url, topic,
//	          n targets, n × target (each length-prefixed)
//	tombstone 2, n, n × store sequence (uvarints): reports that are done
//	          (sent, given up or dropped) and must not be sent again
//
// Its one cursor (cbStoreCursor) is acknowledged over the prefix of done
// reports, so the store's backlog is the window from the oldest owed
// report to the tail, and whole segments behind it are truncated. The
// store is capped with drop_oldest: past the cap the oldest records are
// evicted (owed reports among them are counted as dropped).

const (
	cbRecReport    = 1
	cbRecTombstone = 2

	// cbStoreCursor is the store's own cursor.
	cbStoreCursor = "reports"
)

func encodeCBReport(r *cbReport) []byte {
	n := 32 + len(r.id) + len(r.url) + len(r.topic)
	for _, t := range r.targets {
		n += 2 + len(t)
	}
	b := make([]byte, 0, n)
	b = append(b, cbRecReport)
	b = binary.LittleEndian.AppendUint32(b, r.sid.Epoch)
	b = binary.LittleEndian.AppendUint64(b, r.sid.Seq)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.pushed.UnixNano()))
	b = appendBytes(b, []byte(r.id))
	b = appendBytes(b, []byte(r.url))
	b = appendBytes(b, []byte(r.topic))
	b = binary.AppendUvarint(b, uint64(len(r.targets)))
	for _, t := range r.targets {
		b = appendBytes(b, []byte(t))
	}
	return b
}

func decodeCBReport(b []byte, in interner) (*cbReport, bool) {
	if len(b) < 21 || b[0] != cbRecReport {
		return nil, false
	}
	r := &cbReport{
		sid:    spool.ID{Epoch: binary.LittleEndian.Uint32(b[1:]), Seq: binary.LittleEndian.Uint64(b[5:])},
		pushed: time.Unix(0, int64(binary.LittleEndian.Uint64(b[13:]))),
	}
	d := decoder{b: b[21:], intern: &in}
	r.id, r.url = string(d.bytes()), string(d.bytes())
	r.topic = d.str()
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return nil, false
	}
	for i := uint64(0); i < n && !d.err; i++ {
		r.targets = append(r.targets, d.str())
	}
	if d.err || len(d.b) != 0 || r.url == "" {
		return nil, false
	}
	return r, true
}

func encodeCBTombstone(seqs []uint64) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64*(len(seqs)+1))
	b = append(b, cbRecTombstone)
	b = binary.AppendUvarint(b, uint64(len(seqs)))
	for _, s := range seqs {
		b = binary.AppendUvarint(b, s)
	}
	return b
}

func decodeCBTombstone(b []byte) ([]uint64, bool) {
	if len(b) < 2 || b[0] != cbRecTombstone {
		return nil, false
	}
	d := decoder{b: b[1:]}
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return nil, false
	}
	seqs := make([]uint64, 0, n)
	for i := uint64(0); i < n && !d.err; i++ {
		seqs = append(seqs, d.uvarint())
	}
	return seqs, !d.err && len(d.b) == 0
}
