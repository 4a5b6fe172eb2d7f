package nats

import (
	"sync"
	"time"
)

// maxNoStream bounds the table of subjects without a stream: with {key} in
// the subject template there can be any number of them.
const maxNoStream = 4096

// confirmTTL is how long the answer of a stream lookup for a subject is
// reused, so that a stream of messages to a subject without a stream costs
// one lookup per TTL, not one per Write.
const confirmTTL = 10 * time.Second

// noStreams remembers since when each subject has had no stream, for
// NoStreamGrace.
type noStreams struct {
	mu    sync.Mutex
	since map[string]noStreamSince
}

type noStreamSince struct {
	first, last time.Time

	// The last stream lookup for the subject.
	confirmedAt time.Time
	confirmErr  error
	confirmed   bool
	permanent   bool // logged as permanent
}

// seen records that subject had no stream at now and returns since when.
func (u *noStreams) seen(subject string, now time.Time) time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.since == nil {
		u.since = make(map[string]noStreamSince)
	}
	s, ok := u.since[subject]
	if !ok {
		if len(u.since) >= maxNoStream {
			u.evictLocked()
		}
		s.first = now
	}
	s.last = now
	u.since[subject] = s
	return s.first
}

// evictLocked drops the entry seen least recently.
func (u *noStreams) evictLocked() {
	var (
		oldest string
		at     time.Time
		found  bool
	)
	for subj, s := range u.since {
		if !found || s.last.Before(at) {
			oldest, at, found = subj, s.last, true
		}
	}
	delete(u.since, oldest)
}

// delivered forgets subject: a stream took a message for it.
func (u *noStreams) delivered(subject string) {
	u.mu.Lock()
	if len(u.since) > 0 {
		delete(u.since, subject)
	}
	u.mu.Unlock()
}

// confirmation returns the last lookup for subject if it is younger than
// confirmTTL.
func (u *noStreams) confirmation(subject string, now time.Time) (fresh bool, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	s, ok := u.since[subject]
	if !ok || !s.confirmed || now.Sub(s.confirmedAt) >= confirmTTL || now.Before(s.confirmedAt) {
		return false, nil
	}
	return true, s.confirmErr
}

// confirm records the outcome of a stream lookup for subject.
func (u *noStreams) confirm(subject string, now time.Time, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if s, ok := u.since[subject]; ok {
		s.confirmedAt, s.confirmErr, s.confirmed = now, err, true
		u.since[subject] = s
	}
}

// markPermanent records that subject's messages now fail permanently and
// reports whether that is news.
func (u *noStreams) markPermanent(subject string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	s, ok := u.since[subject]
	if !ok || s.permanent {
		return false
	}
	s.permanent = true
	u.since[subject] = s
	return true
}
