package agent

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluiceio/sluice/spool"
)

// Dead-letter operations: list with filters, show one, replay (back to the
// sink it failed on, keeping its sluice-id) and purge. The dead-letter log
// is append-only: replay and purge append a tombstone naming the entries
// they took, and listings skip tombstoned entries.

// DeadLetter is one entry as the control API shows it.
type DeadLetter struct {
	DLID     uint64            `json:"dl_id"` // position in the dead-letter log
	ID       string            `json:"id"`    // the message's sluice-id
	Sink     string            `json:"sink"`
	Topic    string            `json:"topic,omitempty"`
	Reason   string            `json:"reason"`
	Error    string            `json:"error"`
	Time     time.Time         `json:"time"`
	PushedAt time.Time         `json:"pushed_at,omitzero"`
	Key      *string           `json:"key,omitempty"`
	ValueB64 string            `json:"value_b64,omitempty"` // show only
	Headers  map[string]string `json:"headers,omitempty"`   // show only
}

const recTombstone = 2

func encodeTombstone(action string, seqs []uint64) []byte {
	b := []byte{recTombstone}
	b = appendBytes(b, []byte(action))
	b = binary.AppendUvarint(b, uint64(len(seqs)))
	for _, s := range seqs {
		b = binary.AppendUvarint(b, s)
	}
	return b
}

func decodeTombstone(b []byte) (action string, seqs []uint64, ok bool) {
	if len(b) < 2 || b[0] != recTombstone {
		return "", nil, false
	}
	d := decoder{b: b[1:]}
	action = string(d.bytes())
	n := d.uvarint()
	if d.err || n > uint64(len(d.b)) {
		return "", nil, false
	}
	for i := uint64(0); i < n && !d.err; i++ {
		seqs = append(seqs, d.uvarint())
	}
	return action, seqs, !d.err
}

// dlFilter selects dead letters.
type dlFilter struct {
	topic, sink, reason string
	since, until        time.Time
	ids                 map[uint64]bool // explicit dl_ids; nil = by the other fields
	limit               int
}

func (f *dlFilter) match(e *DeadLetter) bool {
	switch {
	case f.ids != nil:
		return f.ids[e.DLID]
	case f.topic != "" && !matchTopic([]string{f.topic}, e.Topic):
		return false
	case f.sink != "" && f.sink != e.Sink:
		return false
	case f.reason != "" && f.reason != e.Reason:
		return false
	case !f.since.IsZero() && e.Time.Before(f.since):
		return false
	case !f.until.IsZero() && !e.Time.Before(f.until):
		return false
	}
	return true
}

// scan walks the live (not tombstoned) dead letters matching f.
func (d *deadLetters) scan(f *dlFilter, full bool, fn func(e DeadLetter, raw []byte) bool) error {
	d.mu.Lock()
	gone := make(map[uint64]bool, len(d.gone))
	for k := range d.gone {
		gone[k] = true
	}
	d.mu.Unlock()
	return d.sp.Scan(time.Time{}, func(r spool.Record) bool {
		if gone[r.ID.Seq] || r.Corrupt {
			return true
		}
		dl, ok := decodeDeadLetter(r.Data)
		if !ok {
			return true
		}
		e := DeadLetter{DLID: r.ID.Seq, ID: dl.id, Sink: dl.sink, Reason: dl.reason, Error: dl.err, Time: dl.time}
		var m Msg
		if decodeMsg(dl.raw, &m) == nil {
			e.Topic, e.PushedAt = m.Topic, time.Unix(0, m.Time)
			if m.Key != nil {
				k := string(m.Key)
				e.Key = &k
			}
			if full {
				e.ValueB64 = base64.StdEncoding.EncodeToString(m.Value)
				if len(m.Headers) > 0 {
					e.Headers = map[string]string{}
					for _, h := range m.Headers {
						e.Headers[h.Key] = string(h.Value)
					}
				}
			}
		}
		if !f.match(&e) {
			return true
		}
		return fn(e, dl.raw)
	})
}

func parseDLFilter(args *fasthttp.Args) (*dlFilter, *apiError) {
	f := &dlFilter{topic: string(args.Peek("topic")), sink: string(args.Peek("sink")), reason: string(args.Peek("reason")), limit: 100}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &f.since}, {"until", &f.until}} {
		if v := args.Peek(p.name); len(v) > 0 {
			t, err := time.Parse(time.RFC3339, string(v))
			if err != nil {
				return nil, errorf(http.StatusBadRequest, "bad_request", "%s: RFC 3339 time expected", p.name)
			}
			*p.t = t
		}
	}
	if v := args.Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n <= 0 {
			return nil, errorf(http.StatusBadRequest, "bad_request", "limit: a positive number expected")
		}
		f.limit = n
	}
	if v := args.Peek("dl_id"); len(v) > 0 {
		f.ids = map[uint64]bool{}
		for _, s := range strings.Split(string(v), ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
			if err != nil {
				return nil, errorf(http.StatusBadRequest, "bad_request", "dl_id: comma list of numbers expected")
			}
			f.ids[n] = true
		}
	}
	if f.topic != "" {
		if err := ValidateGlobs([]string{f.topic}); err != nil {
			return nil, errorf(http.StatusBadRequest, "bad_request", "topic: %v", err)
		}
	}
	return f, nil
}

// deadLetterControl serves /v1/control/deadletters[...].
func (a *Agent) deadLetterControl(ctx *fasthttp.RequestCtx, rest, method string) *apiError {
	args := ctx.QueryArgs()
	switch {
	case rest == "" && method == http.MethodGet:
		f, e := parseDLFilter(args)
		if e != nil {
			return e
		}
		list := []DeadLetter{}
		total := 0
		err := a.dl.scan(f, false, func(dl DeadLetter, _ []byte) bool {
			total++
			if len(list) < f.limit {
				list = append(list, dl)
			}
			return true
		})
		if err != nil {
			return errorf(http.StatusInternalServerError, "io_error", "%v", err)
		}
		writeJSON(ctx, http.StatusOK, map[string]any{"deadletters": list, "total": total})
		return nil
	case rest == "replay" || rest == "purge":
		if method != http.MethodPost {
			return methodNotAllowed(ctx, "POST")
		}
		f, e := parseDLFilter(args)
		if e != nil {
			return e
		}
		f.limit = 0
		n, err := a.dlTake(f, rest)
		if err != nil {
			return spoolError(err)
		}
		writeJSON(ctx, http.StatusOK, map[string]any{pastTense(rest): n})
		return nil
	case rest != "" && method == http.MethodGet:
		id, err := strconv.ParseUint(rest, 10, 64)
		if err != nil {
			return errorf(http.StatusBadRequest, "bad_request", "dead-letter id must be a number")
		}
		var found *DeadLetter
		a.dl.scan(&dlFilter{ids: map[uint64]bool{id: true}}, true, func(dl DeadLetter, _ []byte) bool {
			found = &dl
			return false
		})
		if found == nil {
			return errorf(http.StatusNotFound, "not_found", "no dead letter %d", id)
		}
		writeJSON(ctx, http.StatusOK, found)
		return nil
	}
	return methodNotAllowed(ctx, "GET")
}

// dlTake replays or purges the dead letters f selects. Replay appends each
// message again, targeted at the sink it failed on only and keeping its
// sluice-id, then tombstones the entries; a crash between the two replays
// them again at worst (at-least-once).
func (a *Agent) dlTake(f *dlFilter, action string) (int, error) {
	var seqs []uint64
	var recs [][]byte
	var ids, sinks []string
	err := a.dl.scan(f, false, func(dl DeadLetter, raw []byte) bool {
		seqs = append(seqs, dl.DLID)
		if action == "replay" {
			var m Msg
			if decodeMsg(raw, &m) != nil {
				seqs = seqs[:len(seqs)-1] // undecodable: leave it for inspection
				return true
			}
			m.ID, m.Sinks = dl.ID, []string{dl.Sink}
			m.IdemKey, m.IdemHash, m.Callback = "", nil, ""
			recs = append(recs, appendMsg(nil, &m))
			ids, sinks = append(ids, dl.ID), append(sinks, dl.Sink)
		}
		return len(seqs) < 100000
	})
	if err != nil || len(seqs) == 0 {
		return 0, err
	}
	if action == "replay" {
		first, err := a.sp.Append(context.Background(), recs...)
		if err != nil {
			return 0, err
		}
		for i, id := range ids {
			a.records.setChained(id, spool.ID{Epoch: first.Epoch, Seq: first.Seq + uint64(i)})
		}
		if err := a.records.flushKept(); err != nil {
			a.log.Warn("cannot write the kept-id log; replayed messages may read their first attempt after a restart", "err", err)
		}
	}
	if _, err := a.dl.sp.Append(context.Background(), encodeTombstone(action, seqs)); err != nil {
		return 0, err
	}
	a.dl.mu.Lock()
	for _, s := range seqs {
		a.dl.gone[s] = true
	}
	if action == "replay" {
		for i, id := range ids { // pending again on the sink it was replayed to
			a.dl.unindexLocked(id, sinks[i], seqs[i])
		}
	}
	a.dl.mu.Unlock()
	a.opts.Metrics.GetOrCreateCounter("sluice_deadletters_" + pastTense(action) + "_total").Add(len(seqs))
	a.log.Info("dead letters "+pastTense(action), "count", len(seqs))
	return len(seqs), nil
}

func pastTense(action string) string {
	if action == "purge" {
		return "purged"
	}
	return action + "ed"
}
