package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/syncbuf"
	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/spool"
)

// worstMsg is the largest message the limits admit: a value of maxMessage
// bytes, and key, headers, callback and Idempotency-Key filling maxHeader
// bytes, with the longest topic, a chained id of the longest length, 64
// headers and 100 sinks of the longest name.
func worstMsg(maxMessage, maxHeader int) Msg {
	m := Msg{
		Time: time.Now().UnixNano(), Partition: sink.NoPartition,
		Topic: strings.Repeat("t", 249), ID: strings.Repeat("i", maxIDBytes),
		Value:    bytes.Repeat([]byte{0xff}, maxMessage),
		Callback: "http://127.0.0.1:1/" + strings.Repeat("c", 200),
		IdemKey:  strings.Repeat("k", 200), IdemHash: bytes.Repeat([]byte{1}, 32),
	}
	for i := range 100 {
		m.Sinks = append(m.Sinks, fmt.Sprintf("%0*d", MaxSinkNameBytes, i))
	}
	left := maxHeader - len(m.Callback) - len(m.IdemKey)
	m.Key = bytes.Repeat([]byte{'K'}, left/2)
	left -= len(m.Key)
	for i := range 64 {
		n := left / (64 - i)
		name := fmt.Sprintf("h%02d", i)
		m.Headers = append(m.Headers, sink.Header{Key: name, Value: bytes.Repeat([]byte{'v'}, n-len(name))})
		left -= n
	}
	return m
}

// The constants the configuration check relies on hold for the real
// encodings: a max-size message with max headers is a record within
// MaxRecordBytes, and its dead letter, with over-long reason and error
// text, within MaxDeadLetterBytes.
func TestDeadLetterEnvelopeBound(t *testing.T) {
	for _, lim := range []struct{ msg, hdr int }{{1 << 20, 16 << 10}, {1, 1 << 10}, {64 << 10, 64 << 10}} {
		m := worstMsg(lim.msg, lim.hdr)
		raw := appendMsg(nil, &m)
		if len(raw) > MaxRecordBytes(lim.msg, lim.hdr) {
			t.Fatalf("%+v: record of %d bytes > MaxRecordBytes %d", lim, len(raw), MaxRecordBytes(lim.msg, lim.hdr))
		}
		if encodedSize(&m) < len(raw) {
			t.Fatalf("encodedSize %d < %d", encodedSize(&m), len(raw))
		}
		e := deadLetter{
			sink: strings.Repeat("s", MaxSinkNameBytes), id: m.ID,
			reason: strings.Repeat("r", 500), err: strings.Repeat("é", 3000),
			time: time.Now(), raw: raw,
		}
		b := encodeDeadLetter(e)
		if over := len(b) - len(raw); over > DeadLetterOverhead {
			t.Fatalf("dead-letter envelope of %d bytes > DeadLetterOverhead %d", over, DeadLetterOverhead)
		}
		if len(b) > MaxDeadLetterBytes(lim.msg, lim.hdr) {
			t.Fatalf("dead letter of %d bytes > %d", len(b), MaxDeadLetterBytes(lim.msg, lim.hdr))
		}
		got, ok := decodeDeadLetter(b)
		if !ok || got.sink != e.sink || got.id != e.id || !bytes.Equal(got.raw, raw) || len(got.err) > maxDLErrorBytes || !strings.HasPrefix(e.err, got.err) {
			t.Fatalf("round trip: ok=%v sink=%q id=%q err %d bytes", ok, got.sink, got.id, len(got.err))
		}
	}
}

// With both spools at exactly the bounds the configuration allows, a
// max-size message with max headers that the sink refuses is dead-lettered
// (before, SLUICE_DEADLETTER_MAX_BYTES = SLUICE_MAX_MESSAGE_BYTES was
// accepted and such a message held its topic forever).
func TestMaxMessageAtMinimumDeadLetterCapIsDeadLettered(t *testing.T) {
	const maxMsg, maxHdr = 64 << 10, 16 << 10
	dir := t.TempDir()
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{Logger: quiet(), MaxRecordBytes: MaxRecordBytes(maxMsg, maxHdr)})
	if err != nil {
		t.Fatal(err)
	}
	dl, err := spool.Open(filepath.Join(dir, "deadletter"), spool.Options{
		Logger: quiet(), FullPolicy: spool.DropOldest, SegmentBytes: 64 << 10,
		MaxRecordBytes: MaxDeadLetterBytes(maxMsg, maxHdr), MaxBytes: int64(MaxDeadLetterBytes(maxMsg, maxHdr) + spool.RecordOverhead),
	})
	if err != nil {
		t.Fatal(err)
	}
	mem := &memSink{}
	mem.setFail(func([]sink.Message) error { return sink.Permanent(errors.New(strings.Repeat("refused ", 1000))) })
	ta := startAgent(t, dir, Options{Spool: sp, DeadLetter: dl, MaxMessageBytes: maxMsg, MaxHeaderBytes: maxHdr,
		Sinks: []SinkSpec{{Name: strings.Repeat("m", MaxSinkNameBytes), Sink: mem.sink()}}})
	// Key and headers as large as the header block allows (the request
	// line and the client's own headers take the rest).
	hdr := map[string]string{"Sluice-Key": strings.Repeat("k", 4000)}
	for i := range 10 {
		hdr[fmt.Sprintf("Sluice-Header-H%d", i)] = strings.Repeat("v", 1000)
	}
	var ids []string
	for i := range 3 { // the second and third evict the first: the log holds one
		r := do(t, "POST", ta.url+"/v1/topics/t", "", bytes.Repeat([]byte{byte('a' + i)}, maxMsg), hdr)
		if r.status != 202 {
			t.Fatalf("push %d: %+v", i, r)
		}
		ids = append(ids, r.ids[0])
		waitFor(t, "dead-lettered", func() bool { return getStatus(t, ta, r.ids[0]).Status == "failed" })
	}
	for i, id := range ids {
		if st := getStatus(t, ta, id); st.Status != "failed" {
			t.Fatalf("message %d: %+v", i, st)
		}
	}
	if r := do(t, "POST", ta.url+"/v1/topics/t", "", bytes.Repeat([]byte{'x'}, maxMsg+1), nil); r.status != 413 {
		t.Fatalf("over the message limit: %+v", r)
	}
}

// A message that cannot leave its lane (the sink refuses it, the
// dead-letter log cannot take it) makes its sink visibly failing: metric,
// stats, error log. Before, sluice_sink_failing stayed 0 while the topic
// waited forever.
func TestUnwritableDeadLetterMakesTheSinkFailing(t *testing.T) {
	dir := t.TempDir()
	dl, err := spool.Open(filepath.Join(dir, "deadletter"), spool.Options{Logger: quiet(), FullPolicy: spool.DropOldest, MaxRecordBytes: 512})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	mem := &memSink{}
	mem.setFail(func(msgs []sink.Message) error {
		if string(msgs[0].Value) == "poison" || len(msgs[0].Value) > 1000 {
			return sink.Permanent(errors.New("record too large"))
		}
		return nil
	})
	ta := startAgent(t, dir, Options{DeadLetter: dl, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}, {Name: "other", Sink: (&memSink{}).sink(), Topics: []string{"other"}}}})
	failing := func() (metric string, st SinkStats) {
		resp, err := http.Get(ta.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, `sluice_sink_failing{sink="mem"}`) {
				metric = l
			}
		}
		for _, s := range ta.a.stats().Sinks {
			if s.Name == "mem" {
				st = s
			}
		}
		return metric, st
	}
	if m, st := failing(); m != `sluice_sink_failing{sink="mem"} 0` || st.Failing {
		t.Fatalf("before: %q %+v", m, st)
	}
	do(t, "POST", ta.url+"/v1/topics/t", "", bytes.Repeat([]byte{'x'}, 2000), nil)
	waitFor(t, "sink failing", func() bool {
		m, st := failing()
		return m == `sluice_sink_failing{sink="mem"} 1` && st.Failing && st.DeadLetterStuck == 1
	})
	waitFor(t, "error log", func() bool { return strings.Contains(logs.String(), "message cannot leave its lane") })
	// Other sinks are not affected.
	for _, s := range ta.a.stats().Sinks {
		if s.Name == "other" && s.Failing {
			t.Fatalf("other sink failing: %+v", s)
		}
	}
}
