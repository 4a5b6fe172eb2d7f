package sinktest

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// baseTime is the push time of the first generated message; it has
// nanoseconds so that precision loss shows.
var baseTime = time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)

// Variety returns one batch of messages that exercises what a sink must
// carry: JSON, text, binary and empty values, nil, empty and binary keys,
// UTF-8, binary, empty and repeated headers, two topics, a large value and,
// when caps.Partition, an explicit partition. Without caps.EmptyKey the
// empty key is left out (it would read back as nil).
func Variety(caps Caps) []sink.Message {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	large := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	msgs := []sink.Message{
		{Key: []byte("k1"), Value: []byte(`{"b":1,"a":[1.50,"\u00e9"]}`),
			Headers: []sink.Header{{Key: "h1", Value: []byte("v1")}, {Key: "h2", Value: []byte("ünïcödé")}}},
		{Value: []byte("plain text, ünïcode ✓")},
		{Key: []byte{0xff, 0x00, 0xfe}, Value: all,
			Headers: []sink.Header{{Key: "bin", Value: []byte{0x00, 0xc3, 0x28}}}},
		{Key: []byte("k1"), Value: []byte{}},
		{Key: []byte("k2"), Value: nil},
		{Key: []byte("k2"), Value: []byte("{\n  \"pretty\": true\n}\n")},
		{Key: []byte("k2"), Value: []byte(`"a JSON string"`)},
		{Key: []byte("k3"), Value: []byte("line1\r\nline2\ttab \"quotes\" \\ \x01 \u2028")},
		{Key: []byte("k3"), Value: large},
		{Key: []byte("k3"), Value: []byte(" 42 "),
			Headers: []sink.Header{{Key: "dup", Value: []byte("1")}, {Key: "dup", Value: []byte("2")}, {Key: "empty", Value: []byte{}}}},
		{Topic: TopicB, Key: []byte("k1"), Value: []byte("[1,2,3]")},
		{Topic: TopicB, Value: []byte("null")},
	}
	if caps.EmptyKey {
		msgs = append(msgs, sink.Message{Key: []byte{}, Value: []byte("empty key")})
	}
	for i := range msgs {
		msgs[i].Partition = sink.NoPartition
	}
	if caps.Partition {
		msgs = append(msgs, sink.Message{Key: []byte("k4"), Value: []byte("partition 0"), Partition: 0})
	}
	for i := range msgs {
		m := &msgs[i]
		m.ID = "sinktest-variety-" + strconv.Itoa(i)
		if m.Topic == "" {
			m.Topic = TopicA
		}
		m.Time = baseTime.Add(time.Duration(i) * time.Millisecond)
	}
	return msgs
}

// Generate returns n messages with ids prefix+index over both topics and ten
// keys, each value about size bytes (JSON, text and binary in turn).
func Generate(prefix string, n, size int) []sink.Message {
	msgs := make([]sink.Message, n)
	for i := range msgs {
		topic := TopicA
		if i%3 == 2 {
			topic = TopicB
		}
		pad := strings.Repeat("x", max(0, size-40))
		var v []byte
		switch i % 3 {
		case 0:
			v = fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, i, pad)
		case 1:
			v = fmt.Appendf(nil, "text %d %s", i, pad)
		default:
			v = fmt.Appendf(nil, "\xff\xfe%d%s", i, pad)
		}
		msgs[i] = sink.Message{
			ID:        prefix + strconv.Itoa(i),
			Topic:     topic,
			Key:       []byte("key-" + strconv.Itoa(i%10)),
			Value:     v,
			Headers:   []sink.Header{{Key: "seq", Value: []byte(strconv.Itoa(i))}},
			Time:      baseTime.Add(time.Duration(i) * time.Microsecond),
			Partition: sink.NoPartition,
		}
	}
	return msgs
}

// Clone returns a deep copy of msgs.
func Clone(msgs []sink.Message) []sink.Message {
	out := make([]sink.Message, len(msgs))
	for i, m := range msgs {
		m.Key = cloneBytes(m.Key)
		m.Value = cloneBytes(m.Value)
		if m.Headers != nil {
			hs := make([]sink.Header, len(m.Headers))
			for j, h := range m.Headers {
				hs[j] = sink.Header{Key: h.Key, Value: cloneBytes(h.Value)}
			}
			m.Headers = hs
		}
		out[i] = m
	}
	return out
}

// cloneBytes copies b keeping nil and empty apart.
func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// Scribble overwrites every byte slice of msgs, as a forwarder reusing its
// buffers would once Write returned.
func Scribble(msgs []sink.Message) {
	fill := func(b []byte) {
		for i := range b {
			b[i] = '#'
		}
	}
	for _, m := range msgs {
		fill(m.Key)
		fill(m.Value)
		for _, h := range m.Headers {
			fill(h.Value)
		}
	}
}

// Diff returns nil when got is what a sink with caps delivers for want, or
// an error describing the first difference. Headers named sink.IDHeader in
// got are ignored; Delivered* fields are not compared.
func Diff(caps Caps, want, got []sink.Message) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d messages arrived, want %d%s", len(got), len(want), idSummary(want, got))
	}
	if !caps.OrderPerKey {
		for i := range want {
			if err := diffMessage(caps, &want[i], &got[i]); err != nil {
				return fmt.Errorf("message %d (id %q): %w", i, want[i].ID, err)
			}
		}
		return nil
	}
	// Per key: compare the sequence of each topic+key lane.
	lanes := func(ms []sink.Message) (map[string][]int, []string) {
		m := map[string][]int{}
		var order []string
		for i := range ms {
			k := ms[i].Topic + "\x00" + string(ms[i].Key)
			if _, ok := m[k]; !ok {
				order = append(order, k)
			}
			m[k] = append(m[k], i)
		}
		return m, order
	}
	wl, order := lanes(want)
	gl, _ := lanes(got)
	for _, k := range order {
		w, g := wl[k], gl[k]
		if len(w) != len(g) {
			return fmt.Errorf("lane %q: %d messages arrived, want %d", k, len(g), len(w))
		}
		for j := range w {
			if err := diffMessage(caps, &want[w[j]], &got[g[j]]); err != nil {
				return fmt.Errorf("lane %q message %d (id %q): %w", k, j, want[w[j]].ID, err)
			}
		}
	}
	return nil
}

func diffMessage(caps Caps, w, g *sink.Message) error {
	if g.ID != w.ID {
		return fmt.Errorf("id %q, want %q", g.ID, w.ID)
	}
	if g.Topic != w.Topic {
		return fmt.Errorf("topic %q, want %q", g.Topic, w.Topic)
	}
	if !bytes.Equal(g.Key, w.Key) || (caps.EmptyKey && (g.Key == nil) != (w.Key == nil)) {
		return fmt.Errorf("key %s, want %s", show(g.Key), show(w.Key))
	}
	if !bytes.Equal(g.Value, w.Value) {
		return fmt.Errorf("value %s, want %s", show(g.Value), show(w.Value))
	}
	var gh []sink.Header
	for _, h := range g.Headers {
		if h.Key != sink.IDHeader {
			gh = append(gh, h)
		}
	}
	if len(gh) != len(w.Headers) {
		return fmt.Errorf("headers %s, want %s", showHeaders(gh), showHeaders(w.Headers))
	}
	if caps.UnorderedHeaders {
		// Compare per name: the values of each name, in order.
		byName := func(hs []sink.Header) map[string][]string {
			m := map[string][]string{}
			for _, h := range hs {
				m[h.Key] = append(m[h.Key], string(h.Value))
			}
			return m
		}
		gm, wm := byName(gh), byName(w.Headers)
		for k, wv := range wm {
			if !slices.Equal(gm[k], wv) {
				return fmt.Errorf("headers %s, want %s (in any order of names)", showHeaders(gh), showHeaders(w.Headers))
			}
		}
		return diffRest(caps, w, g)
	}
	for i := range gh {
		if gh[i].Key != w.Headers[i].Key || !bytes.Equal(gh[i].Value, w.Headers[i].Value) {
			return fmt.Errorf("headers %s, want %s", showHeaders(gh), showHeaders(w.Headers))
		}
	}
	return diffRest(caps, w, g)
}

// diffRest compares what diffMessage checks after the headers: time and
// partition.
func diffRest(caps Caps, w, g *sink.Message) error {
	if p := caps.TimePrecision; p > 0 && !g.Time.Truncate(p).Equal(w.Time.Truncate(p)) {
		return fmt.Errorf("time %s, want %s", g.Time.Format(time.RFC3339Nano), w.Time.Format(time.RFC3339Nano))
	}
	if caps.Partition && w.Partition != sink.NoPartition && g.Partition != w.Partition {
		return fmt.Errorf("partition %d, want %d", g.Partition, w.Partition)
	}
	return nil
}

func show(b []byte) string {
	if b == nil {
		return "nil"
	}
	if len(b) > 64 {
		return fmt.Sprintf("%q... (%d bytes)", b[:64], len(b))
	}
	return fmt.Sprintf("%q", b)
}

func showHeaders(hs []sink.Header) string {
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = h.Key + "=" + show(h.Value)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// idSummary names the first few ids of both sides for a count mismatch.
func idSummary(want, got []sink.Message) string {
	ids := func(ms []sink.Message) string {
		var s []string
		for i := range ms {
			if i == 5 {
				s = append(s, "...")
				break
			}
			s = append(s, ms[i].ID)
		}
		return strings.Join(s, ",")
	}
	return fmt.Sprintf(" (got ids %s; want ids %s)", ids(got), ids(want))
}
