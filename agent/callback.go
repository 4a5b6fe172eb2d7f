package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluiceio/sluice/spool"
)

// callbacks delivers a JSON report to a message's Sluice-Callback URL once
// its outcome is known: delivered by every target sink, dead-lettered, or
// dropped.
//
// Reports are not the write-ahead log's problem. A copier reads the main
// spool with its own cursor, copies each record that asks for a callback
// into the callback store (a spool of its own, <SPOOL_DIR>/callbacks,
// capped, drop_oldest) and acknowledges the main cursor as soon as the copy
// is durable: the main cursor never waits for a receiver, so a dead or slow
// receiver never holds the spool nor blocks a push.
//
// A loader reads the store into memory (at most maxPending owed reports;
// past it the oldest report of the host with the most pending is dropped,
// counted). The dispatcher (callback_dispatch.go) makes a report ready when
// every target sink's cursor passed its message, sends it with per-host
// fairness and bounded concurrency, retries on a timer heap with doubling
// backoff, gives up after the set attempts (counted), and tombstones done
// reports in the store so a restart does not send them again. Delivery is
// at least once: a report may be sent again after a crash (the delivery_id
// is stable, for de-duplication).
type callbacks struct {
	a      *Agent
	cursor *spool.Cursor // main spool: the copier's position
	// backlogEnd is the last record spooled before this start: copyLoop
	// reads up to it in full. Past it, it reads only once asked is set,
	// which ingest does before it appends a record with a callback: until
	// then it moves the cursor past what is durable without reading it.
	backlogEnd uint64
	asked      atomic.Bool
	store      *spool.Spool
	storeCur   *spool.Cursor
	guard      *callbackGuard
	client     *http.Client
	attempts   int
	backoff    time.Duration
	workers    int
	perHost    int
	maxPending int
	log        *slog.Logger

	sent, failed, gaveUp, dropped, copied *metrics.Counter
	pending                               *metrics.Gauge
}

// Report is the body POSTed to a callback URL.
type Report struct {
	DeliveryID string                `json:"delivery_id"`
	ID         string                `json:"id"`
	Topic      string                `json:"topic"`
	Status     string                `json:"status"` // delivered, failed or dropped
	Sinks      map[string]SinkStatus `json:"sinks"`
	Error      string                `json:"error,omitempty"`
	Attempt    int                   `json:"attempt"`
	PushedAt   time.Time             `json:"pushed_at"`
	ReportedAt time.Time             `json:"reported_at"`
}

// callbackCursor cannot clash with a sink name ([a-z0-9]+).
const callbackCursor = "callbacks.internal"

const (
	callbackWorkers = 8 // attempts in flight at most
	callbackPerHost = 2 // of which to one receiver host: a slow host cannot take them all
	callbackTimeout = 10 * time.Second
)

func newCallbacks(a *Agent, guard *callbackGuard) (*callbacks, error) {
	o := &a.opts
	c, err := a.sp.Cursor(callbackCursor, spool.CursorOptions{})
	if err != nil {
		return nil, fmt.Errorf("callbacks: %w", err)
	}
	store, own := o.Callbacks, false
	if store == nil {
		store, err = spool.Open(filepath.Join(a.sp.Dir(), "callbacks"), CallbackStoreOptions(o.CallbackMaxBytes, "", a.log))
		if err != nil {
			c.Release()
			return nil, fmt.Errorf("callbacks: open store: %w", err)
		}
		own = true
	}
	sc, err := store.Cursor(cbStoreCursor, spool.CursorOptions{FromOldest: true})
	if err != nil {
		c.Release()
		if own {
			store.Close()
		}
		return nil, fmt.Errorf("callbacks: store: %w", err)
	}
	// copyLoop keeps nothing of what it reads: encodeCBReport copies.
	c.ReuseBuffer()
	tr := &http.Transport{DialContext: guard.dial, MaxIdleConnsPerHost: callbackPerHost, IdleConnTimeout: 30 * time.Second}
	set := o.Metrics
	cb := &callbacks{
		a: a, cursor: c, backlogEnd: a.sp.LastSeq(), store: store, storeCur: sc, guard: guard,
		attempts: o.CallbackAttempts, backoff: o.CallbackBackoff,
		workers: callbackWorkers, perHost: callbackPerHost, maxPending: o.CallbackMaxPending,
		log: a.log.With("component", "callbacks"),
		client: &http.Client{
			Transport:     tr,
			Timeout:       callbackTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		sent:    set.GetOrCreateCounter("sluice_callbacks_sent_total"),
		failed:  set.GetOrCreateCounter("sluice_callbacks_failed_attempts_total"),
		gaveUp:  set.GetOrCreateCounter("sluice_callbacks_given_up_total"),
		dropped: set.GetOrCreateCounter("sluice_callbacks_dropped_total"),
		copied:  set.GetOrCreateCounter("sluice_callbacks_stored_total"),
		pending: set.GetOrCreateGauge("sluice_callbacks_pending", nil),
	}
	set.GetOrCreateGauge("sluice_callbacks_store_bytes", func() float64 { return float64(cb.storeCur.BacklogBytes()) })
	return cb, nil
}

// CallbackStoreOptions are the spool options of the callback store for a
// byte cap (0 = 64 MiB) and a sync policy ("" = always).
func CallbackStoreOptions(maxBytes int64, sync spool.SyncPolicy, log *slog.Logger) spool.Options {
	if maxBytes <= 0 {
		maxBytes = 64 << 20
	}
	if log == nil {
		log = slog.Default()
	}
	return spool.Options{
		SegmentBytes: min(1<<20, max(maxBytes/8, 64<<10)),
		Sync:         sync,
		MaxBytes:     maxBytes,
		FullPolicy:   spool.DropOldest,
		Logger:       log.With("spool", "callbacks"),
	}
}

// run copies, loads and dispatches until ctx is done; every goroutine it
// starts has returned when it returns.
func (cb *callbacks) run(ctx context.Context) {
	loaded := make(chan cbLoad)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); cb.copyLoop(ctx) }()
	go func() { defer wg.Done(); cb.loadLoop(ctx, loaded) }()
	newDispatcher(cb).run(ctx, loaded)
	wg.Wait()
}

// close releases the store's cursor and closes the store (the agent owns
// it, like the dead-letter log). The main cursor is released with the
// sinks' cursors.
func (cb *callbacks) close() error {
	cb.storeCur.Release()
	return cb.store.Close()
}

// skipUnasked acknowledges the main cursor up to the last durable record
// without reading, when no record since start asked for a callback, then
// waits for the next record. It returns false when ctx is done or the
// spool closed.
func (cb *callbacks) skipUnasked(ctx context.Context) bool {
	// LastSeq before asked: a record with a callback that is durable by
	// now had asked set before it was appended, so it is seen here.
	last := cb.a.sp.LastSeq()
	if cb.asked.Load() {
		return true
	}
	if last > cb.cursor.Acked() {
		if _, err := cb.cursor.SkipTo(last, false); err != nil {
			cb.log.Error("callback cursor", "err", err)
			return sleepCtx(ctx, time.Second)
		}
	}
	err := cb.a.sp.WaitAfter(ctx, last)
	return err == nil || (ctx.Err() == nil && !errors.Is(err, spool.ErrClosed))
}

// copyLoop reads the main spool and copies every record that asks for a
// callback into the store, then acknowledges the main cursor. The only
// waits are on the store's disk, never on a receiver.
func (cb *callbacks) copyLoop(ctx context.Context) {
	spoolID := cb.a.sp.SpoolID()
	for ctx.Err() == nil {
		if !cb.asked.Load() && cb.cursor.Acked() >= cb.backlogEnd {
			if !cb.skipUnasked(ctx) {
				return
			}
			continue
		}
		recs, err := cb.cursor.Read(ctx, 1000, 1<<20)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, spool.ErrClosed) {
				return
			}
			cb.log.Error("callbacks: read spool", "err", err)
			if !sleepCtx(ctx, time.Second) {
				return
			}
			continue
		}
		var out [][]byte
		for _, r := range recs {
			var m Msg
			if r.Corrupt || !hasExtras(r.Data) || decodeMsg(r.Data, &m) != nil || m.Callback == "" {
				continue
			}
			rep := &cbReport{sid: r.ID, id: m.ID, url: m.Callback, topic: m.Topic, targets: m.Sinks, pushed: time.Unix(0, m.Time)}
			if rep.id == "" {
				rep.id = formatID(spoolID, r.ID)
			}
			out = append(out, encodeCBReport(rep))
		}
		if !cb.storeReports(ctx, out) {
			return
		}
		if err := cb.cursor.Ack(recs[len(recs)-1].ID.Seq); err != nil {
			cb.log.Error("callback cursor", "err", err)
		}
	}
}

// storeReports appends records to the store, in chunks; it retries errors
// of the disk (they hold the main spool too) and drops, counted, what the
// store can never take. It returns false when ctx is done.
func (cb *callbacks) storeReports(ctx context.Context, recs [][]byte) bool {
	for len(recs) > 0 {
		n, size := 0, 0
		for n < len(recs) && (n == 0 || size+len(recs[n]) < 1<<20) {
			size += len(recs[n])
			n++
		}
		for {
			_, err := cb.store.Append(ctx, recs[:n]...)
			if err == nil {
				cb.copied.Add(n)
				break
			}
			if ctx.Err() != nil || errors.Is(err, spool.ErrClosed) {
				return false
			}
			if errors.Is(err, spool.ErrTooLarge) || errors.Is(err, spool.ErrFull) {
				cb.dropped.Add(n)
				cb.log.Warn("callback reports dropped: the store cannot take them", "reports", n, "err", err)
				break
			}
			cb.log.Error("callback store append failed; retrying", "err", err)
			if !sleepCtx(ctx, time.Second) {
				return false
			}
		}
		recs = recs[n:]
	}
	return true
}

// cbLoad is a batch of owed reports read from the store; last is the last
// store sequence read (records after the previous batch up to last that
// are not in reports need nothing).
type cbLoad struct {
	reports []*cbReport
	last    uint64
}

// loadLoop hands the store's reports to the dispatcher in store order. At
// start it first reads the tombstones up to the current tail, so a report
// already done is never handed over again.
func (cb *callbacks) loadLoop(ctx context.Context, out chan<- cbLoad) {
	in := interner{}
	gone, recoverTo := cb.readTombstones(ctx)
	for ctx.Err() == nil {
		recs, err := cb.storeCur.Read(ctx, 1000, 1<<20)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, spool.ErrClosed) {
				return
			}
			cb.log.Error("callbacks: read store", "err", err)
			if !sleepCtx(ctx, time.Second) {
				return
			}
			continue
		}
		l := cbLoad{last: recs[len(recs)-1].ID.Seq}
		for _, r := range recs {
			if gone[r.ID.Seq] {
				delete(gone, r.ID.Seq)
				continue
			}
			if r.Corrupt {
				continue
			}
			if rep, ok := decodeCBReport(r.Data, in); ok {
				rep.storeSeq = r.ID.Seq
				l.reports = append(l.reports, rep)
			}
		}
		if gone != nil && l.last >= recoverTo {
			gone = nil // past the tail seen at start: free the recovery set
		}
		select {
		case out <- l:
		case <-ctx.Done():
			return
		}
	}
}

// readTombstones scans the store from its cursor to the tail at start and
// returns the store sequences of done reports and that tail, then rewinds.
func (cb *callbacks) readTombstones(ctx context.Context) (map[uint64]bool, uint64) {
	gone := map[uint64]bool{}
	last := cb.store.LastSeq()
	for cb.storeCur.Acked() < last && ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		recs, err := cb.storeCur.Read(rctx, 4096, 4<<20)
		cancel()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, spool.ErrClosed) {
				break
			}
			// The store could not be read (no file descriptor free,
			// EIO): stopping here would send done reports again.
			cb.log.Error("callbacks: read store", "err", err)
			if !sleepCtx(ctx, time.Second) {
				break
			}
			continue
		}
		for _, r := range recs {
			if seqs, ok := decodeCBTombstone(r.Data); ok && !r.Corrupt {
				for _, s := range seqs {
					gone[s] = true
				}
			}
		}
		if recs[len(recs)-1].ID.Seq >= last {
			break
		}
	}
	cb.storeCur.Rewind()
	return gone, last
}

// reportBody renders the report of r as it stands now.
// final is false while the message is not resolved (pending or in flight
// again after a replay of its dead letter): such a report is not sent.
func (cb *callbacks) reportBody(r *cbReport) (body []byte, deliveryID string, final bool) {
	st := cb.a.statusAt(r.sid, r.id, r.targets) // a replay of its dead letter counts
	if st.Status == "pending" || st.Status == "in_flight" {
		return nil, "", false
	}
	rep := Report{DeliveryID: "cb-" + r.id, ID: r.id, Topic: r.topic, Status: st.Status, Sinks: st.Sinks,
		Attempt: r.attempt + 1, PushedAt: r.pushed, ReportedAt: time.Now().UTC()}
	for _, s := range st.Sinks {
		if s.Error != "" {
			rep.Error = s.Error
		}
	}
	body, _ = json.Marshal(rep)
	return body, rep.DeliveryID, true
}

// post makes one attempt.
func (cb *callbacks) post(ctx context.Context, url, deliveryID string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %v", errCallbackNotAllowed, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sluice-Delivery-Id", deliveryID)
	resp, err := cb.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("callback answered %s", resp.Status)
	}
	return nil
}
