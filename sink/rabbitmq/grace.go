package rabbitmq

import (
	"sync"
	"sync/atomic"
	"time"
)

// maxGraceEntries bounds the unroutable table: templates can name any
// number of destinations.
const maxGraceEntries = 4096

// graceTracker remembers since when each destination has been unroutable
// (no queue bound, or no such exchange), for UnroutableGrace.
type graceTracker struct {
	n     atomic.Int64 // entries, read without the lock on the delivery path
	mu    sync.Mutex
	since map[string]*graceEntry
}

type graceEntry struct {
	first, last time.Time
	permanent   bool // logged as permanent
}

// seen records that dest is unroutable at now and returns since when.
func (g *graceTracker) seen(dest string, now time.Time) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.since == nil {
		g.since = make(map[string]*graceEntry)
	}
	e := g.since[dest]
	if e == nil {
		if len(g.since) >= maxGraceEntries {
			g.evictLocked()
		}
		e = &graceEntry{first: now}
		g.since[dest] = e
		g.n.Store(int64(len(g.since)))
	}
	e.last = now
	return e.first
}

// evictLocked drops the entry seen least recently.
func (g *graceTracker) evictLocked() {
	var (
		oldest string
		at     time.Time
	)
	for d, e := range g.since {
		if oldest == "" || e.last.Before(at) {
			oldest, at = d, e.last
		}
	}
	delete(g.since, oldest)
}

// markPermanent records that dest's messages now fail permanently and
// reports whether that is news (to log it once).
func (g *graceTracker) markPermanent(dest string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.since[dest]
	if e == nil || e.permanent {
		return false
	}
	e.permanent = true
	return true
}

// routed forgets dests: they took a delivery.
func (g *graceTracker) routed(dests map[string]bool) {
	if g.n.Load() == 0 || len(dests) == 0 {
		return
	}
	g.mu.Lock()
	for d := range dests {
		delete(g.since, d)
	}
	g.n.Store(int64(len(g.since)))
	g.mu.Unlock()
}

// empty reports whether no destination is being tracked.
func (g *graceTracker) empty() bool { return g.n.Load() == 0 }

// Keys of the tracker: a route (exchange and routing key) that returned
// NO_ROUTE, or an exchange that does not exist.
func routeKey(exchange, key string) string { return "r\x00" + exchange + "\x00" + key }
func exchangeKey(exchange string) string   { return "x\x00" + exchange }
