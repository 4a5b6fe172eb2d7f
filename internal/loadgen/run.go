package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

var (
	// ErrConfig is wrapped by Run when the Config is invalid.
	ErrConfig = errors.New("loadgen: invalid config")
	// ErrUnreachable is wrapped by Run when nothing accepts a connection
	// at Config.URL.
	ErrUnreachable = errors.New("loadgen: no agent at")
	// ErrNoBrokers is returned by ReadKafka without brokers.
	ErrNoBrokers = errors.New("loadgen: no kafka brokers")
)

// Run pushes load at the agent described by cfg until cfg.Duration or
// cfg.Count is reached or ctx is done, and reports what happened. Requests
// in flight when the run ends are waited for (each is bounded by
// cfg.Timeout). Errors from the agent are counted in the Report, not
// returned: Run fails only on an invalid Config (ErrConfig) or when nothing
// accepts a connection at cfg.URL (ErrUnreachable).
func Run(ctx context.Context, cfg Config) (Report, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return Report{}, err
	}
	t, err := parseURL(c.URL)
	if err != nil {
		return Report{}, err
	}
	if err := probe(t, min(c.Timeout, 5*time.Second)); err != nil {
		return Report{}, fmt.Errorf("%w %s: %w", ErrUnreachable, c.URL, err)
	}
	r := newRunner(&c, t)
	defer r.hc.CloseIdleConnections()
	return r.run(ctx), nil
}

// runner is the state of one Run shared by its workers; it is read-only
// once the workers start, except claimed.
type runner struct {
	cfg      *Config
	hc       *fasthttp.HostClient
	topics   []string
	uris     []string // per topic (single, ndjson) or one (json)
	keyNames []string
	auth     string
	ackTO    string
	parse    bool // replies must be decoded (verify, ack delivered)
	workers  []*worker

	claimed atomic.Int64 // closed loop with Count: messages handed out

	start    time.Time
	deadline time.Time // closed loop: zero = none

	// open loop
	interval  float64 // ns between two requests over all connections
	scheduled int64   // requests in the schedule
	hardStop  time.Time
}

func newRunner(c *Config, t target) *runner {
	r := &runner{cfg: c, hc: newClient(c, t), topics: topicNames(c.Topic, c.Topics)}
	if c.Mode == ModeJSON {
		r.uris = []string{t.prefix + "/v1/messages"}
	} else {
		for _, tp := range r.topics {
			r.uris = append(r.uris, t.prefix+"/v1/topics/"+tp)
		}
	}
	for i := range max(c.Keys, 0) {
		r.keyNames = append(r.keyNames, "k"+strconv.Itoa(i))
	}
	if c.Token != "" {
		r.auth = "Bearer " + c.Token
	}
	if c.AckDelivered && c.AckTimeout > 0 {
		r.ackTO = c.AckTimeout.String()
	}
	r.parse = c.Verify || c.AckDelivered
	for i := range c.Connections {
		r.workers = append(r.workers, newWorker(r, i))
	}
	return r
}

func (r *runner) run(ctx context.Context) Report {
	c := r.cfg
	r.start = time.Now()
	if c.Rate > 0 {
		r.interval = float64(c.Batch) / c.Rate * 1e9
		r.scheduled = math.MaxInt64
		if c.Count > 0 {
			r.scheduled = (c.Count + int64(c.Batch) - 1) / int64(c.Batch)
		}
		if c.Duration > 0 {
			r.scheduled = min(r.scheduled, int64(math.Ceil(float64(c.Duration)/r.interval)))
			r.hardStop = r.start.Add(c.Duration + c.Grace)
		}
	} else if c.Duration > 0 {
		r.deadline = r.start.Add(c.Duration)
	}

	done := make(chan struct{})
	var progress sync.WaitGroup
	if c.Progress != nil {
		progress.Go(func() { r.progress(done) })
	}
	var wg sync.WaitGroup
	for _, w := range r.workers {
		wg.Go(func() {
			if c.Rate > 0 {
				w.openLoop(ctx)
			} else {
				w.closedLoop(ctx)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(r.start)
	close(done)
	progress.Wait()
	return r.report(elapsed)
}

// claim hands out up to n messages of Count in closed loop; 0 = done.
func (r *runner) claim(n int) int {
	if r.cfg.Count == 0 {
		return n
	}
	end := r.claimed.Add(int64(n))
	start := end - int64(n)
	if start >= r.cfg.Count {
		return 0
	}
	return int(min(end, r.cfg.Count) - start)
}

// progress writes one line per interval until done is closed.
func (r *runner) progress(done <-chan struct{}) {
	tick := time.NewTicker(r.cfg.ProgressInterval)
	defer tick.Stop()
	var lastAcked int64
	last := r.start
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			var acked, errs int64
			h := new(Histogram)
			for _, w := range r.workers {
				acked += w.ackedN.Load()
				errs += w.errN.Load()
				h.Merge(&w.hist)
			}
			rate := float64(acked-lastAcked) / now.Sub(last).Seconds()
			lastAcked, last = acked, now
			fmt.Fprintf(r.cfg.Progress, "%6.1fs %11.0f msg/s %10d acked %7d errors  p99 %s\n",
				now.Sub(r.start).Seconds(), rate, acked, errs, fmtDuration(h.Quantile(0.99)))
		}
	}
}

// msgMeta is what a worker remembers about one message of the request in
// flight.
type msgMeta struct {
	key   int // index into runner.keyNames, -1 = no key
	topic int
	n     int64
}

// worker drives one connection. Only its own goroutine writes its fields;
// the atomics are read by the progress line.
type worker struct {
	r   *runner
	idx int

	hist   Histogram
	ackedN atomic.Int64
	errN   atomic.Int64

	requests   int64
	messages   int64
	ackedBytes int64
	errors     map[string]int64
	samples    map[string]string
	statuses   map[string]int64
	ackedIDs   []Acked

	keys   []int   // key indices this worker owns
	seq    []int64 // last n per owned key
	next   int     // round-robin position in keys
	noKeyN int64   // n of keyless messages
	rr     int     // topic round robin of keyless requests

	meta     []msgMeta
	body     []byte
	val      []byte
	valBytes int64
	req      fasthttp.Request
	resp     fasthttp.Response
}

func newWorker(r *runner, idx int) *worker {
	w := &worker{
		r: r, idx: idx,
		errors: map[string]int64{}, samples: map[string]string{}, statuses: map[string]int64{},
	}
	c := r.cfg
	for k := idx; k < len(r.keyNames); k += c.Connections {
		w.keys = append(w.keys, k)
	}
	if len(w.keys) == 0 && len(r.keyNames) > 0 {
		w.keys = []int{idx % len(r.keyNames)} // shared: fewer keys than connections
	}
	w.seq = make([]int64, len(w.keys))
	return w
}

// nextKey returns the next owned key (position in w.keys, or -1 without
// keys) and its topic.
func (w *worker) nextKey() (pos, topic int) {
	if len(w.keys) == 0 {
		w.rr++
		return -1, (w.idx + w.rr) % len(w.r.topics)
	}
	pos = w.next
	w.next = (w.next + 1) % len(w.keys)
	return pos, w.keys[pos] % len(w.r.topics)
}

// nextMsg appends the meta of the next message of key position pos and
// builds its value in w.val.
func (w *worker) nextMsg(pos, topic int) {
	m := msgMeta{key: -1, topic: topic}
	name := ""
	if pos >= 0 {
		w.seq[pos]++
		m.key, m.n = w.keys[pos], w.seq[pos]
		name = w.r.keyNames[m.key]
	} else {
		w.noKeyN++
		m.n = w.noKeyN
	}
	w.meta = append(w.meta, m)
	w.val = appendValue(w.val[:0], w.r.cfg.RunID, name, m.n, w.r.cfg.Size)
	w.valBytes += int64(len(w.val))
}

// build prepares the request for n messages.
func (w *worker) build(n int) {
	c, r := w.r.cfg, w.r
	w.meta, w.body, w.valBytes = w.meta[:0], w.body[:0], 0
	req := &w.req
	req.Reset()
	req.Header.SetMethod(fasthttp.MethodPost)
	switch c.Mode {
	case ModeJSON:
		req.SetRequestURI(r.uris[0])
		req.Header.SetContentType("application/json")
		w.body = append(w.body, `{"messages":[`...)
		for i := range n {
			pos, topic := w.nextKey()
			w.nextMsg(pos, topic)
			if i > 0 {
				w.body = append(w.body, ',')
			}
			w.body = append(w.body, `{"topic":"`...)
			w.body = append(w.body, r.topics[topic]...)
			if pos >= 0 {
				w.body = append(w.body, `","key":"`...)
				w.body = append(w.body, r.keyNames[w.keys[pos]]...)
			}
			w.body = append(w.body, `","value":`...)
			w.body = appendJSONString(w.body, w.val)
			w.body = append(w.body, '}')
		}
		w.body = append(w.body, ']', '}')
	default:
		pos, topic := w.nextKey()
		req.SetRequestURI(r.uris[topic])
		if c.Mode == ModeNDJSON {
			req.Header.SetContentType("application/x-ndjson")
		} else {
			req.Header.SetContentType("application/json")
		}
		if pos >= 0 {
			req.Header.Set("Sluice-Key", r.keyNames[w.keys[pos]])
		}
		for range n {
			w.nextMsg(pos, topic)
			w.body = append(w.body, w.val...)
			if c.Mode == ModeNDJSON {
				w.body = append(w.body, '\n')
			}
		}
	}
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	if c.AckDelivered {
		req.Header.Set("Sluice-Ack", "delivered")
		if r.ackTO != "" {
			req.Header.Set("Sluice-Timeout", r.ackTO)
		}
	}
	req.SetBodyRaw(w.body)
	req.SetTimeout(c.Timeout)
}

// send performs the built request and accounts for its outcome. It
// returns false after a transport error (no reply).
func (w *worker) send(scheduled time.Time) bool {
	err := w.r.hc.Do(&w.req, &w.resp)
	lat := time.Since(scheduled)
	n := int64(len(w.meta))
	w.requests++
	w.messages += n
	if err != nil {
		w.fail(transportKey(err), err.Error())
		return false
	}
	status := w.resp.StatusCode()
	if status < 200 || status > 299 {
		key, msg := errorKey(status, w.resp.Body())
		w.fail(key, msg)
		return true
	}
	if w.r.parse {
		var rp reply
		if err := json.Unmarshal(w.resp.Body(), &rp); err != nil || len(rp.IDs) != len(w.meta) {
			w.fail(fmt.Sprintf("%d bad_reply", status), fmt.Sprintf("want %d ids: %.200s", len(w.meta), w.resp.Body()))
			return true
		}
		if w.r.cfg.Verify {
			for i, id := range rp.IDs {
				m := w.meta[i]
				a := Acked{ID: id, Topic: w.r.topics[m.topic], N: m.n}
				if m.key >= 0 {
					a.Key = w.r.keyNames[m.key]
				}
				w.ackedIDs = append(w.ackedIDs, a)
			}
		}
		if w.r.cfg.AckDelivered {
			if rp.Status == "" {
				rp.Status = "spooled"
			}
			w.statuses[rp.Status] += n
		}
	}
	w.hist.Record(lat)
	w.ackedBytes += w.valBytes
	w.ackedN.Add(n)
	return true
}

func (w *worker) fail(key, msg string) {
	w.errors[key]++
	if _, ok := w.samples[key]; !ok {
		w.samples[key] = msg
	}
	w.errN.Add(1)
}

// closedLoop sends the next request as soon as the previous one was
// answered.
func (w *worker) closedLoop(ctx context.Context) {
	c, r := w.r.cfg, w.r
	pause := time.NewTimer(0)
	<-pause.C
	for ctx.Err() == nil {
		if !r.deadline.IsZero() && !time.Now().Before(r.deadline) {
			return
		}
		n := r.claim(c.Batch)
		if n == 0 {
			return
		}
		w.build(n)
		if !w.send(time.Now()) && c.ErrorPause > 0 {
			pause.Reset(c.ErrorPause)
			select {
			case <-ctx.Done():
				return
			case <-pause.C:
			}
		}
	}
}

// openLoop sends request i of the global schedule (one every r.interval)
// for i = idx, idx+connections, ... at its scheduled time, or at once when
// it is late; latency counts from the scheduled time, so a slow reply that
// delays the next request shows up as queueing instead of being hidden
// (coordinated omission).
func (w *worker) openLoop(ctx context.Context) {
	c, r := w.r.cfg, w.r
	timer := time.NewTimer(0)
	<-timer.C
	for i := int64(w.idx); i < r.scheduled; i += int64(c.Connections) {
		at := r.start.Add(time.Duration(float64(i) * r.interval))
		if d := time.Until(at); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		if !r.hardStop.IsZero() && time.Now().After(r.hardStop) {
			return
		}
		n := c.Batch
		if c.Count > 0 {
			n = int(min(int64(n), c.Count-i*int64(c.Batch)))
		}
		w.build(n)
		w.send(at)
	}
}
