package spool

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// A drop under drop_oldest never takes records an open cursor pins
// (CursorOptions.Pin) before it acknowledged them: the append over the cap
// is refused (ErrFull) and nothing is dropped, for any cursor, also once
// the records are read. Once the cursor acknowledged the oldest records,
// the same append drops them. While Pin says false, or once the cursor is
// released, it is skipped as any other.
func TestDropOldestNeverTakesRecordsAPinningCursorHasNotAcknowledged(t *testing.T) {
	s, _, val := atTheCap(t, 20)
	var pinned atomic.Bool
	pinned.Store(true)
	var asked atomic.Uint64
	p, err := s.Cursor("keys", CursorOptions{FromOldest: true, Pin: func(next uint64) bool { asked.Store(next); return pinned.Load() }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(context.Background(), val); !errors.Is(err, ErrFull) {
		t.Fatalf("append over the cap with the pinned cursor at the oldest record: %v, want ErrFull", err)
	}
	if d := s.Stats().Dropped; d != 0 || asked.Load() != 1 {
		t.Fatalf("dropped %d with the pinned cursor unread (Pin asked for %d, want 1)", d, asked.Load())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if recs, err := p.Read(ctx, 2, 1<<20); err != nil || len(recs) != 2 {
		t.Fatalf("read: %d records, %v", len(recs), err)
	}
	// Read is not enough: what it made of them may not be durable yet.
	if _, err := s.Append(context.Background(), val); !errors.Is(err, ErrFull) {
		t.Fatalf("append over the cap with the oldest two read, not acknowledged: %v, want ErrFull", err)
	}
	if err := p.Ack(2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(context.Background(), val); err != nil {
		t.Fatalf("append over the cap once the pinned cursor acknowledged the oldest two: %v", err)
	}
	if d := s.Stats().Dropped; d < 1 || d > 2 {
		t.Fatalf("dropped %d, want 1 or 2", d)
	}

	// Unread records it does not pin (Pin says false) are dropped.
	pinned.Store(false)
	before := s.Stats().Dropped
	if _, err := s.Append(context.Background(), val); err != nil || s.Stats().Dropped == before {
		t.Fatalf("append over the cap, the unread records not pinned: %v, dropped %d more", err, s.Stats().Dropped-before)
	}

	// Released, it pins nothing: the next drop skips it too.
	pinned.Store(true)
	p.Release()
	if _, err := s.Append(context.Background(), val); err != nil {
		t.Fatalf("append over the cap with the pinned cursor released: %v", err)
	}
}
