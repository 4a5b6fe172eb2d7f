package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluiceio/sluice/spool"
)

// callbacks delivers a JSON report to a message's Sluice-Callback URL once
// its outcome is known: delivered by every target sink, or dead-lettered,
// or dropped. It reads the spool with its own cursor, so reports survive
// restarts and are delivered at least once (the delivery_id is stable, for
// de-duplication). Each report is tried a bounded number of times with
// backoff, then counted and logged as given up.
type callbacks struct {
	a        *Agent
	cursor   *spool.Cursor
	guard    *callbackGuard
	client   *http.Client
	attempts int
	backoff  time.Duration
	log      *slog.Logger

	sent, failed, gaveUp *metrics.Counter
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

type cbItem struct {
	seq     uint64
	sid     spool.ID
	id      string
	url     string
	topic   string
	targets []string
	pushed  time.Time
	state   int // 0 waiting, 1 sending, 2 done
}

// callbackCursor cannot clash with a sink name ([a-z0-9]+).
const callbackCursor = "callbacks.internal"

func newCallbacks(a *Agent, guard *callbackGuard, attempts int, backoff time.Duration) (*callbacks, error) {
	c, err := a.sp.Cursor(callbackCursor, spool.CursorOptions{})
	if err != nil {
		return nil, fmt.Errorf("callbacks: %w", err)
	}
	tr := &http.Transport{DialContext: guard.dial, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}
	set := a.opts.Metrics
	return &callbacks{
		a: a, cursor: c, guard: guard, attempts: attempts, backoff: backoff, log: a.log.With("component", "callbacks"),
		client: &http.Client{
			Transport:     tr,
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		sent:   set.GetOrCreateCounter("sluice_callbacks_sent_total"),
		failed: set.GetOrCreateCounter("sluice_callbacks_failed_attempts_total"),
		gaveUp: set.GetOrCreateCounter("sluice_callbacks_given_up_total"),
	}, nil
}

func (cb *callbacks) run(ctx context.Context) {
	in := make(chan []*cbItem, 4)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); cb.read(ctx, in) }()
	defer wg.Wait()

	done := make(chan *cbItem, 128)
	work := make(chan *cbItem, 64)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				cb.send(ctx, it)
				done <- it
			}
		}()
	}
	defer close(work)
	var pending []*cbItem
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		changed := cb.a.records.wait()
		select {
		case <-ctx.Done():
			return
		case items := <-in:
			pending = append(pending, items...)
		case it := <-done:
			it.state = 2
		case <-changed:
		case <-tick.C:
		}
		// Hand resolved messages to the senders.
		for _, it := range pending {
			if it.state != 0 {
				continue
			}
			if st := cb.a.statusOf(it.sid, it.id, it.targets); st.Status == "pending" {
				continue
			}
			select {
			case work <- it:
				it.state = 1
			default:
			}
		}
		// Acknowledge the cursor up to the first unfinished report.
		i := 0
		for i < len(pending) && pending[i].state == 2 {
			i++
		}
		if i > 0 {
			if err := cb.cursor.Ack(pending[i-1].seq); err != nil {
				cb.log.Error("callback cursor", "err", err)
			}
			pending = append(pending[:0], pending[i:]...)
		}
	}
}

// read turns spool records into callback items; a run of records without
// a callback comes through as one finished item (seq = the run's last) so
// the cursor can pass them.
func (cb *callbacks) read(ctx context.Context, in chan<- []*cbItem) {
	for ctx.Err() == nil {
		recs, err := cb.cursor.Read(ctx, 1000, 1<<20)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, spool.ErrClosed) {
				return
			}
			continue
		}
		var items []*cbItem
		for _, r := range recs {
			var m Msg
			if !r.Corrupt && hasExtras(r.Data) && decodeMsg(r.Data, &m) == nil && m.Callback != "" {
				it := &cbItem{seq: r.ID.Seq, sid: r.ID, id: m.ID, url: m.Callback, topic: m.Topic, targets: m.Sinks, pushed: time.Unix(0, m.Time)}
				if it.id == "" {
					it.id = formatID(cb.a.sp.SpoolID(), r.ID)
				}
				items = append(items, it)
				continue
			}
			// Nothing to report: one finished item stands for a run of them.
			if n := len(items); n > 0 && items[n-1].state == 2 {
				items[n-1].seq = r.ID.Seq
			} else {
				items = append(items, &cbItem{seq: r.ID.Seq, sid: r.ID, state: 2})
			}
		}
		select {
		case in <- items:
		case <-ctx.Done():
			return
		}
	}
}

func (cb *callbacks) send(ctx context.Context, it *cbItem) {
	st := cb.a.statusOf(it.sid, it.id, it.targets)
	rep := Report{DeliveryID: "cb-" + it.id, ID: it.id, Topic: it.topic, Status: st.Status, Sinks: st.Sinks, PushedAt: it.pushed}
	for _, s := range st.Sinks {
		if s.Error != "" {
			rep.Error = s.Error
		}
	}
	backoff := cb.backoff
	for attempt := 1; attempt <= cb.attempts; attempt++ {
		rep.Attempt, rep.ReportedAt = attempt, time.Now().UTC()
		body, _ := json.Marshal(rep)
		err := func() error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, it.url, bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Sluice-Delivery-Id", rep.DeliveryID)
			resp, err := cb.client.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				return fmt.Errorf("callback answered %s", resp.Status)
			}
			return nil
		}()
		if err == nil {
			cb.sent.Inc()
			return
		}
		cb.failed.Inc()
		if errors.Is(err, errCallbackNotAllowed) || ctx.Err() != nil {
			if ctx.Err() == nil {
				cb.log.Warn("callback refused at dial time", "id", it.id, "err", err)
				cb.gaveUp.Inc()
			}
			return
		}
		if attempt == cb.attempts {
			cb.gaveUp.Inc()
			cb.log.Warn("callback given up", "id", it.id, "url", it.url, "attempts", attempt, "err", err)
			return
		}
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}
