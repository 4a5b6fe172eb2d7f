package spool

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestCursorFromOldestDuringTruncationNotesNothingLost: a cursor created at
// the oldest record (the agent's idempotency copier, callback store
// cursor, dead-letter and queue-log readers all are) while a front
// truncation scheduled before it existed is running reads a segment whose
// file the truncation has just removed, before s.segs says so. That is not
// damage: the reader reads on from the new front. It took the missing file
// for damage, counted a corruption and noted the records lost: records
// every other cursor had acknowledged (delivered) read unknown, and the
// rewritten segment's first record, still on disk, was skipped.
func TestCursorFromOldestDuringTruncationNotesNothingLost(t *testing.T) {
	val := strings.Repeat("v", 500)
	for iter := range 40 { // it failed within two before the fix
		dir := t.TempDir()
		s := openT(t, dir, Options{SegmentBytes: 4096, CursorSyncInterval: time.Hour, TruncateSegments: 1})
		a, err := s.Cursor("a", CursorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []ID
		for i := 0; i < 60; i++ {
			id, err := s.Append(context.Background(), []byte(val))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		for got := 0; got < len(ids); {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			recs, err := a.Read(ctx, 1000, 1<<20)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			got += len(recs)
			if err := a.Ack(recs[len(recs)-1].ID.Seq); err != nil {
				t.Fatal(err)
			}
		}
		// What the flush loop does: persist "a", schedule the truncation.
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(iter%8) * 250 * time.Microsecond)
		b, err := s.Cursor("b", CursorOptions{FromOldest: true})
		if err != nil {
			t.Fatal(err)
		}
		for b.Acked() < s.LastSeq() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			recs, err := b.Read(ctx, 1, 1<<20)
			cancel()
			if err != nil {
				break
			}
			if err := b.Ack(recs[0].ID.Seq); err != nil {
				t.Fatal(err)
			}
		}
		st := s.Stats()
		if st.Corruptions > 0 || st.LostRecords > 0 {
			lost, onDisk := 0, 0
			for _, id := range ids {
				if s.Lost(id) {
					lost++
					if _, err := s.Get(id.Seq); err == nil {
						onDisk++
					}
				}
			}
			t.Fatalf("iteration %d: a cursor created while an ordinary truncation ran counted %d corruptions and noted %d records lost (%d of them still readable on disk), all acknowledged by cursor a and none damaged; truncations %d",
				iter, st.Corruptions, lost, onDisk, st.Truncations)
		}
		s.Close()
	}
}
