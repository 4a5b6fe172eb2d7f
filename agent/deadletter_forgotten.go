package agent

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
)

// A message's status is derived: a sink's cursor past it means delivered
// unless the dead-letter index says failed. The index is bounded
// (dlIndexSize ids) and the dead-letter log is capped (oldest discarded),
// so a dead letter can be forgotten; the cursor alone would then report
// `delivered` for a message that was not. To never say that falsely, each
// sink keeps a watermark: the highest spool sequence of a message whose
// dead letter may have been forgotten. An acknowledged message at or below
// it that the index does not know is `unknown` (reason
// deadletter_forgotten), not `delivered`; messages above it are exact.
//
// The watermark rises when the index evicts an id (by that message's
// sequence, or the spool's last sequence when the id does not tell it) and
// when the dead-letter log discards records at its cap (to the spool's last
// sequence: which messages they held is not known without reading them).
// It is kept in the dead-letter directory (file "forgotten", rewritten on
// change, not fsynced: after a machine crash it can be older than the
// discards it covered). sluice_deadletters_forgotten_total counts the
// dead letters forgotten by the index and the log.

const forgottenFile = "forgotten"

var errForgottenFile = errors.New("agent: unreadable dead-letter watermark file")

// putEvicted is put that also returns the entry it evicted, if any.
func (b *boundedMap[K, V]) putEvicted(k K, v V) (ek K, ev V, evicted bool) {
	if _, ok := b.m[k]; !ok && len(b.ring) >= b.max {
		ek = b.ring[b.next]
		ev, evicted = b.m[ek]
	}
	b.put(k, v)
	return ek, ev, evicted
}

// loadForgotten reads the watermarks (a missing file: none).
func (d *deadLetters) loadForgotten() error {
	b, err := os.ReadFile(filepath.Join(d.sp.Dir(), forgottenFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var v struct {
		UpTo      map[string]uint64 `json:"up_to"`
		Forgotten uint64            `json:"forgotten"`
	}
	if json.Unmarshal(b, &v) != nil {
		return errForgottenFile
	}
	for k, s := range v.UpTo {
		d.forgotUpTo[k] = s
	}
	d.forgotten = v.Forgotten
	return nil
}

func (d *deadLetters) saveForgottenLocked() error {
	b, _ := json.Marshal(map[string]any{"up_to": d.forgotUpTo, "forgotten": d.forgotten})
	p := filepath.Join(d.sp.Dir(), forgottenFile)
	if err := os.WriteFile(p+".tmp", b, 0o600); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

// forgetLocked raises sinkName's watermark to seq.
func (d *deadLetters) forgetLocked(sinkName string, seq uint64) bool {
	d.forgotten++
	if d.forgotUpTo[sinkName] >= seq {
		return false
	}
	d.forgotUpTo[sinkName] = seq
	return true
}

// evictedLocked handles an id the index evicted: every sink it was dead
// for forgets up to its sequence.
func (d *deadLetters) evictedLocked(id string, sinks map[string]dlInfo) {
	seq := d.seqOf(id)
	changed := false
	for s := range sinks {
		changed = d.forgetLocked(s, seq) || changed
	}
	if changed {
		d.dirty = true
	}
}

// discardedLocked handles records the log discarded at its cap: every sink
// forgets up to the spool's last sequence.
func (d *deadLetters) discardedLocked(n uint64, sinks []string) {
	last := d.lastSeq()
	for _, s := range sinks {
		if d.forgotUpTo[s] < last {
			d.forgotUpTo[s] = last
			d.dirty = true
		}
	}
	d.forgotten += n
}

// mayHaveForgotten reports whether a dead letter of the message at seq for
// sinkName could have been forgotten.
func (d *deadLetters) mayHaveForgotten(sinkName string, seq uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return seq <= d.forgotUpTo[sinkName]
}

func (d *deadLetters) forgottenTotal() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.forgotten
}

// seqOfID is the spool sequence of message id (its latest record), or the
// last sequence (an upper bound) when neither the id nor the chained-id
// cache tells it.
func (a *Agent) seqOfID(id string) uint64 {
	if pos, ok := a.records.lookupChained(id); ok && len(pos) > 0 {
		seq := uint64(0)
		for _, sid := range pos {
			seq = max(seq, sid.Seq)
		}
		return seq
	}
	if spoolID, sid, err := parseID(id); err == nil && spoolID == a.sp.SpoolID() {
		return sid.Seq
	}
	return a.sp.LastSeq()
}

// forgottenStatus is a sink's status for an acknowledged message whose
// dead letter may have been forgotten.
// dropForgottenStatus is the status of a message among a cursor's older
// drops, merged (spool.Cursor.DropForgotten), with no other word of it.
func dropForgottenStatus() SinkStatus {
	return SinkStatus{Status: "unknown", Reason: "drop_forgotten",
		Error: "among the older drops of a backlog policy, which are no longer told apart from what was delivered between them: delivered or dropped"}
}

// lostStatus: the record was lost to damage in its spool segment
// (spool.Lost): quarantined at start-up or skipped by a read, before or
// after it was delivered.
func lostStatus() SinkStatus {
	return SinkStatus{Status: "unknown", Reason: "spool_damaged",
		Error: "the spool segment holding this message was found damaged and its rest skipped: delivered before that, or lost"}
}

// cutStatus: a machine crash cut the record from the spool's unsynced
// tail (spool.Cut; SPOOL_SYNC=interval or never).
func cutStatus() SinkStatus {
	return SinkStatus{Status: "unknown", Reason: "spool_cut",
		Error: "a machine crash cut this message from the spool's unsynced tail (SPOOL_SYNC=interval or never): delivered before the crash, or lost"}
}

func forgottenStatus() SinkStatus {
	return SinkStatus{Status: "unknown", Reason: "deadletter_forgotten",
		Error: "acknowledged by the sink, but the dead-letter record of this message may have been discarded (dead-letter index or log full): delivered or dead-lettered"}
}
