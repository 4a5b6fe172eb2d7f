package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluiceio/sluice/spool"
)

// idempotency remembers the requests that carried an Idempotency-Key for
// a window, so a retry returns the original ids without spooling again.
// This is the in-memory index; idempotency_store.go keeps it durable
// across restarts and WAL truncation. An entry is pending while its
// request's append has no known outcome (even past a 503 spool_timeout):
// a retry waits for it and never spools a second copy. The index is
// bounded (pending entries are never evicted); evictions are counted.
type idempotency struct {
	window time.Duration
	max    int

	mu      sync.Mutex
	entries map[string]*idemEntry
	order   []string // insertion order, for eviction and expiry
	evicted uint64
}

type idemEntry struct {
	hash []byte
	ids  []string
	at   time.Time
	done chan struct{} // closed when the first request's outcome is known
	ok   bool          // the first request was spooled
}

func (e *idemEntry) pending() bool {
	select {
	case <-e.done:
		return false
	default:
		return true
	}
}

func newIdempotency(window time.Duration, max int) *idempotency {
	return &idempotency{window: window, max: max, entries: map[string]*idemEntry{}}
}

// requestHash covers everything that makes two requests the same request:
// path, content type, the Sluice-* headers and the body.
func requestHash(ctx *fasthttp.RequestCtx) []byte {
	h := sha256.New()
	h.Write(ctx.Path())
	h.Write([]byte{0})
	h.Write(ctx.Request.Header.ContentType())
	h.Write([]byte{0})
	var sl []string
	for k, v := range ctx.Request.Header.All() {
		if name := strings.ToLower(string(k)); strings.HasPrefix(name, "sluice-") && name != "sluice-timeout" {
			sl = append(sl, name+"\x00"+string(v))
		}
	}
	sort.Strings(sl)
	for _, s := range sl {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(ctx.PostBody())
	return h.Sum(nil)
}

func validIdemKey(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// begin claims key for a new request, or returns the entry of an earlier
// (possibly still pending) request with that key.
func (x *idempotency) begin(key string, hash []byte, now time.Time) (e *idemEntry, first bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e, ok := x.entries[key]; ok && (e.pending() || now.Sub(e.at) <= x.window) {
		return e, false
	}
	e = &idemEntry{hash: hash, at: now, done: make(chan struct{})}
	x.putLocked(key, e, now)
	return e, true
}

// loaded puts a stored entry (already resolved) into the index.
func (x *idempotency) loaded(r idemRecord) {
	e := &idemEntry{hash: r.hash, ids: r.ids, at: r.at, done: make(chan struct{}), ok: true}
	close(e.done)
	x.mu.Lock()
	x.putLocked(r.key, e, r.at)
	x.mu.Unlock()
}

// forget drops key's entry (one loaded before it of the same key); its
// place in order goes when it comes to the front.
func (x *idempotency) forget(key string) {
	x.mu.Lock()
	delete(x.entries, key)
	x.mu.Unlock()
}

func (x *idempotency) putLocked(key string, e *idemEntry, now time.Time) {
	if _, ok := x.entries[key]; !ok {
		x.order = append(x.order, key)
	}
	x.entries[key] = e
	// Expired entries at the front go first, then the oldest over max;
	// a pending entry is never dropped (it is bounded by the requests in
	// flight): it moves to the back.
	for skipped := 0; len(x.order) > 0 && skipped < len(x.order); {
		old := x.order[0]
		o, ok := x.entries[old]
		if ok && now.Sub(o.at) <= x.window && len(x.entries) <= x.max {
			break
		}
		x.order = x.order[1:]
		switch {
		case !ok:
		case o.pending():
			x.order = append(x.order, old)
			skipped++
		case now.Sub(o.at) > x.window:
			delete(x.entries, old)
		default:
			delete(x.entries, old)
			x.evicted++
		}
	}
	if len(x.order) > 2*x.max+16 { // compact keys replaced or removed
		keep := x.order[:0]
		for _, k := range x.order {
			if _, ok := x.entries[k]; ok {
				keep = append(keep, k)
			}
		}
		x.order = keep
	}
}

// finish records the outcome of the first request with key: its ids, or
// nil when it was not spooled (the key is released: a retry spools anew).
func (x *idempotency) finish(key string, e *idemEntry, ids []string) {
	x.mu.Lock()
	if ids != nil {
		e.ids, e.ok = ids, true
	} else if x.entries[key] == e {
		delete(x.entries, key)
	}
	x.mu.Unlock()
	close(e.done)
}

// finishLater waits in the background for the outcome of an append whose
// waiter gave up (503 spool_timeout) and finishes the key with the ids
// outcome returns for it (nil when the append failed).
func (x *idempotency) finishLater(key string, e *idemEntry, p *spool.Pending, outcome func(spool.ID, error) []string) {
	go func() {
		x.finish(key, e, outcome(p.Outcome()))
	}()
}

func (x *idempotency) stats() (size int, evicted uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.entries), x.evicted
}

// idemCheck handles the Idempotency-Key of a push. It returns a non-nil
// reply (ids or error) when the request must not be spooled again;
// otherwise the entry to finish and the value to store with the first
// message.
func (a *Agent) idemCheck(ctx *fasthttp.RequestCtx, key string, n int) (e *idemEntry, stored []byte, ids []string, aerr *apiError) {
	if !validIdemKey(key) {
		return nil, nil, nil, errorf(http.StatusBadRequest, "bad_request", "Idempotency-Key must be 1-255 printable ASCII characters")
	}
	hash := requestHash(ctx)
	// A repeat waits for a pending first request as long as its own
	// Sluice-Timeout (default AckTimeout) allows.
	_, wait, aerr := a.ackMode(ctx, false)
	if aerr != nil {
		wait = a.opts.AckTimeout
	}
	for {
		e, first := a.idem.begin(key, hash, time.Now())
		if first {
			return e, binary.AppendUvarint(bytes.Clone(hash), uint64(n)), nil, nil
		}
		if !bytes.Equal(e.hash, hash) {
			return nil, nil, nil, errorf(http.StatusConflict, "idempotency_conflict", "Idempotency-Key was used with a different request")
		}
		if !waitDone(e.done, wait) {
			return nil, nil, nil, errorf(http.StatusServiceUnavailable, "spool_timeout", "the first request with this Idempotency-Key has no known outcome yet: retry with the same key")
		}
		if e.ok {
			return nil, nil, e.ids, nil
		}
		// The first request failed: try to become the first.
	}
}

// waitDone waits up to d for done; a known outcome always wins, also with
// d = 0 (a select of two ready cases picks one at random).
func waitDone(done <-chan struct{}, d time.Duration) bool {
	select {
	case <-done:
		return true
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// appendKeyed appends the batch of a request with an Idempotency-Key. An
// append whose outcome is unknown (ErrTimeout) keeps the key pending (late
// is set): a goroutine finishes it with the real outcome, so a retry gets
// the original ids, or spools anew only if the append failed. Otherwise
// the caller finishes the key.
func (a *Agent) appendKeyed(batch *spool.Batch, key string, e *idemEntry, chained []string, valueBytes int) (first spool.ID, late bool, err error) {
	st, n := a.idemSt, uint64(len(chained))
	st.appending()
	var p *spool.Pending
	if p, err = a.sp.AppendAsync(context.Background(), batch); err == nil {
		first, err = p.Wait(context.Background())
		if errors.Is(err, spool.ErrTimeout) {
			a.idem.finishLater(key, e, p, func(first spool.ID, err error) []string {
				if err != nil {
					st.appended(0)
					return nil
				}
				st.appended(first.Seq + n - 1)
				return a.spooled(first, chained, valueBytes)
			})
			return spool.ID{}, true, err
		}
	}
	if err != nil {
		st.appended(0)
		return spool.ID{}, false, err
	}
	st.appended(first.Seq + n - 1)
	return first, false, nil
}
