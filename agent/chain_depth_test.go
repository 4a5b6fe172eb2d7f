package agent

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/sluiceio/sluice/internal/jsonenc"
	sinkhttp "github.com/sluiceio/sluice/sink/http"
)

// jsonenc.Portable in the HTTP sink: a chained sluice (HTTP sink
// -> /v1/messages of another sluice) stores every value byte for byte on
// both sides of the depth limit, brackets and backslashes in strings
// included, and keeps the sluice-id; a queue of the receiving sluice
// hands each out byte for byte too (value or value_b64).
func TestChainedSluiceKeepsValuesAroundTheDepthLimit(t *testing.T) {
	nest := func(n int, inner string) string {
		return strings.Repeat(`{"a":[`, n/2) + strings.Repeat("[", n%2) + inner + strings.Repeat("]", n%2) + strings.Repeat("]}", n/2)
	}
	d := jsonenc.MaxValueDepth
	values := []string{
		nest(d, `1`),
		nest(d+1, `1`),
		nest(d, `"]]]}}}\\\"[[[{{{\\\\"`), // escaped quote and backslashes among brackets
		nest(d-1, `["\\", "\\\\]", "\u00e9\ud83d\ude00"]`),
		strings.Repeat("[", d) + strings.Repeat("]", d),
		strings.Repeat("[", d+1) + strings.Repeat("]", d+1),
		strings.Repeat("[ ", d+1) + strings.Repeat("] ", d) + "]", // whitespace inside
		`["` + strings.Repeat(`\\[`, 200) + `"]`,
		`{"s":"` + strings.Repeat(`\"[`, 100) + `"}`,
	}
	rdir := t.TempDir()
	mem := &memSink{}
	recv := startAgent(t, rdir, withQueues(t, rdir, Options{Sinks: []SinkSpec{{Name: "m", Sink: mem.sink()}}}, QueueSpec{Name: "q"}))
	hs, err := sinkhttp.New(sinkhttp.Options{URL: recv.url + "/v1/messages"})
	if err != nil {
		t.Fatal(err)
	}
	send := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "h", Sink: hs}}})
	var ids []string
	for _, v := range values {
		ids = append(ids, pushKey(t, send.url, "t", "", v))
	}
	waitFor(t, "every value at the receiver", func() bool { return len(mem.messages()) >= len(values) })
	got := map[string][]byte{}
	for _, m := range mem.messages() {
		got[m.ID] = m.Value
	}
	for i, id := range ids {
		if !bytes.Equal(got[id], []byte(values[i])) {
			t.Errorf("value %d (%.40q…): the receiving sluice stored %.40q…", i, values[i], got[id])
		}
	}
	var pulledMsgs []pulled
	waitFor(t, "every value pulled from the receiver's queue", func() bool {
		pulledMsgs = append(pulledMsgs, qcall(t, recv.url, "q", "pull", `{"max":100}`).Messages...)
		return len(pulledMsgs) >= len(values)
	})
	for _, m := range pulledMsgs {
		v := []byte(m.Value)
		if m.Value == nil {
			v, _ = base64.StdEncoding.DecodeString(m.ValueB64)
		}
		i := -1
		for j, id := range ids {
			if id == m.ID {
				i = j
			}
		}
		if i < 0 || string(v) != values[i] {
			t.Errorf("pulled %s: %.40q…", m.ID, v)
		}
	}
}
