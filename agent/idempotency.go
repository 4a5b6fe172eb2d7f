package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
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
// The key and a hash of the request are stored with the request's first
// message (one append: atomic with it), and the index is rebuilt from the
// spool at start. The index is bounded; evictions are counted.
type idempotency struct {
	window time.Duration
	max    int

	mu      sync.Mutex
	entries map[string]*idemEntry
	order   []string // insertion order, for eviction
	evicted uint64
}

type idemEntry struct {
	hash []byte
	ids  []string
	at   time.Time
	done chan struct{} // closed when the first request finished
	ok   bool          // the first request was spooled
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
// (possibly still running) request with that key.
func (x *idempotency) begin(key string, hash []byte, now time.Time) (e *idemEntry, first bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e, ok := x.entries[key]; ok && now.Sub(e.at) <= x.window {
		return e, false
	}
	e = &idemEntry{hash: hash, at: now, done: make(chan struct{})}
	x.putLocked(key, e)
	return e, true
}

func (x *idempotency) putLocked(key string, e *idemEntry) {
	if _, ok := x.entries[key]; !ok {
		x.order = append(x.order, key)
	}
	x.entries[key] = e
	for len(x.entries) > x.max && len(x.order) > 0 {
		old := x.order[0]
		x.order = x.order[1:]
		if _, ok := x.entries[old]; ok {
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

// finish records the outcome of the first request with key.
func (x *idempotency) finish(key string, e *idemEntry, ids []string) {
	x.mu.Lock()
	if ids != nil {
		e.ids, e.ok = ids, true
	} else if x.entries[key] == e {
		delete(x.entries, key) // failed: a retry may try again
	}
	x.mu.Unlock()
	close(e.done)
}

func (x *idempotency) stats() (size int, evicted uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.entries), x.evicted
}

// rebuild reloads the keys pushed within the window from the spool.
func (x *idempotency) rebuild(sp *spool.Spool, now time.Time) error {
	var cur *idemEntry
	var want int
	var key string
	return sp.Scan(now.Add(-x.window), func(r spool.Record) bool {
		if cur == nil && !hasExtras(r.Data) {
			return true // the common case: no key, nothing to decode
		}
		var m Msg
		if r.Corrupt || decodeMsg(r.Data, &m) != nil {
			cur = nil
			return true
		}
		id := m.ID
		if id == "" {
			id = formatID(sp.SpoolID(), r.ID)
		}
		if cur != nil && len(cur.ids) < want {
			cur.ids = append(cur.ids, id)
			return true
		}
		cur = nil
		if m.IdemKey == "" || len(m.IdemHash) < sha256.Size {
			return true
		}
		n, vn := binary.Uvarint(m.IdemHash[sha256.Size:])
		if vn <= 0 {
			return true
		}
		key, want = m.IdemKey, int(n)
		cur = &idemEntry{hash: bytes.Clone(m.IdemHash[:sha256.Size]), ids: []string{id}, at: r.Time, done: make(chan struct{}), ok: true}
		close(cur.done)
		x.mu.Lock()
		x.putLocked(key, cur)
		x.mu.Unlock()
		return true
	})
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
	for {
		e, first := a.idem.begin(key, hash, time.Now())
		if first {
			return e, binary.AppendUvarint(bytes.Clone(hash), uint64(n)), nil, nil
		}
		if !bytes.Equal(e.hash, hash) {
			return nil, nil, nil, errorf(http.StatusConflict, "idempotency_conflict", "Idempotency-Key was used with a different request")
		}
		t := time.NewTimer(a.opts.AckTimeoutMax)
		select {
		case <-e.done:
			t.Stop()
		case <-t.C:
			return nil, nil, nil, errorf(http.StatusServiceUnavailable, "spool_timeout", "the first request with this Idempotency-Key is still running")
		}
		if e.ok {
			return nil, nil, e.ids, nil
		}
		// The first request failed: try to become the first.
	}
}
