package kafkaproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluiceio/sluice/agent"
)

// producerIDBlock is how many producer ids one write of the state file
// reserves: ids are unique across restarts (a crash skips the rest of a
// block) at one fsync per block.
const producerIDBlock = 1000

// producerIDFile holds the first producer id not yet reserved.
const producerIDFile = "producer-ids"

// producers hands out producer ids and keeps each idempotent producer's
// sequence windows, per topic partition, in memory (bounded).
type producers struct {
	dir string
	max int // producers remembered at most

	mu       sync.Mutex
	next     int64 // next id to hand out
	reserved int64 // ids below this are reserved in the state file
	byID     map[int64]*producer
}

// producer is one idempotent producer's state. Its mutex is held while a
// produce request checks, spools and records its batches, so that a
// producer's batches for a partition are checked against what was spooled
// before them.
type producer struct {
	mu       sync.Mutex
	id       int64
	lastUsed time.Time
	// users counts the gets not yet released (producers.mu): a producer
	// in use is never evicted, or a retry of a batch being spooled would
	// find a fresh producer and be appended twice.
	users int
	parts map[topicPartition]*seqWindow
}

type topicPartition struct {
	topic     string
	partition int32
}

// seqWindow remembers the last five batches a producer appended to a
// partition (Kafka's in-flight limit for idempotent producers), to answer
// a retried batch with its original offset.
type seqWindow struct {
	epoch   int16
	nextSeq int32
	entries [5]seqEntry
	at, n   int
}

type seqEntry struct {
	firstSeq, nextSeq int32
	offset            int64
}

// Outcomes of a sequence check.
var (
	errOutOfOrder   = errors.New("out of order sequence number")
	errStaleEpoch   = errors.New("producer epoch is older than the current one")
	errProducerFile = errors.New("kafkaproto: producer id state")
)

func openProducers(dir string, max int) (*producers, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("%w: %v", errProducerFile, err)
	}
	p := &producers{dir: dir, max: max, byID: map[int64]*producer{}}
	b, err := os.ReadFile(filepath.Join(dir, producerIDFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		p.next = 1
	case err != nil:
		return nil, fmt.Errorf("%w: %v", errProducerFile, err)
	default:
		n, perr := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if perr != nil || n < 1 {
			return nil, fmt.Errorf("%w: %s holds %q", errProducerFile, filepath.Join(dir, producerIDFile), b)
		}
		p.next = n
	}
	p.reserved = p.next
	return p, nil
}

// newID returns a producer id never handed out before by this state
// directory.
func (p *producers) newID() (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next >= p.reserved {
		if p.next > math.MaxInt64-2*producerIDBlock {
			return 0, fmt.Errorf("%w: producer ids exhausted", errProducerFile)
		}
		if err := atomicWrite(filepath.Join(p.dir, producerIDFile), []byte(strconv.FormatInt(p.next+producerIDBlock, 10)+"\n")); err != nil {
			return 0, fmt.Errorf("%w: %v", errProducerFile, err)
		}
		p.reserved = p.next + producerIDBlock
	}
	id := p.next
	p.next++
	return id, nil
}

// get returns the state of producer id, creating it when it is unknown (a
// producer from before a restart, or one evicted). Every get is paired
// with a release.
func (p *producers) get(id int64) *producer {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.byID[id]
	if pr == nil {
		if len(p.byID) >= p.max {
			p.evictLocked()
		}
		pr = &producer{id: id, parts: map[topicPartition]*seqWindow{}}
		p.byID[id] = pr
	}
	pr.lastUsed = time.Now() // under p.mu: evictLocked reads it
	pr.users++
	return pr
}

// release ends a get.
func (p *producers) release(pr *producer) {
	p.mu.Lock()
	pr.users--
	p.mu.Unlock()
}

// evictLocked forgets the least recently used producer not in use. A
// later batch of it is accepted with whatever sequence it carries (as
// Kafka does for a producer whose state expired). When every producer is
// in use, none is forgotten: the table holds more than max for a while.
func (p *producers) evictLocked() {
	var oldest *producer
	for _, pr := range p.byID {
		if pr.users == 0 && (oldest == nil || pr.lastUsed.Before(oldest.lastUsed)) {
			oldest = pr
		}
	}
	if oldest != nil {
		delete(p.byID, oldest.id)
	}
}

// check decides a batch of count records from sequence firstSeq with the
// producer's epoch: nil (append it), a duplicate of a batch appended
// before (dup true, its offset), errStaleEpoch or errOutOfOrder. Call with
// pr.mu held.
func (pr *producer) check(tp topicPartition, epoch int16, firstSeq, count int32) (dup bool, offset int64, err error) {
	w := pr.parts[tp]
	if w != nil && epoch < w.epoch { // epochs are per partition, as in Kafka
		return false, 0, errStaleEpoch
	}
	if w == nil || epoch != w.epoch {
		// Unknown partition state: any sequence starts it. A new epoch
		// restarts sequences at 0 for partitions seen before.
		if w != nil && firstSeq != 0 {
			return false, 0, errOutOfOrder
		}
		return false, 0, nil
	}
	next := seqAdd(firstSeq, count)
	for i := range w.n {
		if e := w.entries[i]; e.firstSeq == firstSeq && e.nextSeq == next {
			return true, e.offset, nil
		}
	}
	if firstSeq != w.nextSeq {
		return false, 0, errOutOfOrder
	}
	return false, 0, nil
}

// record notes an appended batch (after check returned nil for it). Call
// with pr.mu held.
func (pr *producer) record(tp topicPartition, epoch int16, firstSeq, count int32, offset int64) {
	w := pr.parts[tp]
	if w == nil || w.epoch != epoch {
		w = &seqWindow{epoch: epoch}
		pr.parts[tp] = w
	}
	next := seqAdd(firstSeq, count)
	w.nextSeq = next
	w.entries[w.at] = seqEntry{firstSeq: firstSeq, nextSeq: next, offset: offset}
	w.at = (w.at + 1) % len(w.entries)
	w.n = min(w.n+1, len(w.entries))
}

// batchMetaVersion starts the bytes stored with the first message of an
// idempotent batch.
const batchMetaVersion = 1

// encodeBatchMeta is what the spool keeps of an idempotent batch so that
// its producer's window can be rebuilt: version, partition, producer id,
// epoch, first sequence, record count.
func encodeBatchMeta(partition int32, pid int64, epoch int16, firstSeq, count int32) []byte {
	b := make([]byte, 0, 23)
	b = append(b, batchMetaVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(partition))
	b = binary.BigEndian.AppendUint64(b, uint64(pid))
	b = binary.BigEndian.AppendUint16(b, uint16(epoch))
	b = binary.BigEndian.AppendUint32(b, uint32(firstSeq))
	return binary.BigEndian.AppendUint32(b, uint32(count))
}

// rebuild replays the idempotent batches the spool holds since then into
// the sequence windows, and returns how many it found.
func (p *producers) rebuild(acc agent.Acceptor, since time.Time) (int, error) {
	n := 0
	last := acc.LastSeq()
	err := acc.ScanMeta(since, func(seq uint64, topic string, meta []byte) {
		if len(meta) != 23 || meta[0] != batchMetaVersion {
			return
		}
		partition := int32(binary.BigEndian.Uint32(meta[1:]))
		pid := int64(binary.BigEndian.Uint64(meta[5:]))
		epoch := int16(binary.BigEndian.Uint16(meta[13:]))
		firstSeq := int32(binary.BigEndian.Uint32(meta[15:]))
		count := int32(binary.BigEndian.Uint32(meta[19:]))
		if count <= 0 || seq+uint64(count)-1 > last {
			// The append of this batch was cut short by a crash (its
			// tail is gone): it was never acknowledged, and its retry
			// must be spooled, not taken for a duplicate.
			return
		}
		pr := p.get(pid)
		pr.mu.Lock()
		pr.record(topicPartition{topic, partition}, epoch, firstSeq, count, int64(seq))
		pr.mu.Unlock()
		p.release(pr)
		n++
	})
	return n, err
}

// seqAdd adds count to a sequence, wrapping past MaxInt32 to 0 as Kafka
// does (MaxInt32 is itself a sequence).
func seqAdd(seq, count int32) int32 {
	return int32((int64(seq) + int64(count)) & math.MaxInt32)
}

// atomicWrite writes a file durably: temp file, fsync, rename, directory
// fsync.
func atomicWrite(name string, data []byte) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(name))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
