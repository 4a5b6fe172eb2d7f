package file

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluiceio/sluice/internal/jsonenc"
	"github.com/sluiceio/sluice/sink"
)

var testTime = time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)

func msg(value string) sink.Message {
	return sink.Message{ID: "id1", Topic: "t", Value: []byte(value), Time: testTime, Partition: sink.NoPartition}
}

func TestAppendRecord(t *testing.T) {
	const ts = `,"timestamp":"2026-01-02T03:04:05.123456789Z"}` + "\n"
	line := func(middle string) string { return `{"id":"id1","topic":"t"` + middle + ts }
	tests := []struct {
		name string
		m    sink.Message
		want string
	}{
		{"json object kept byte for byte", msg(`{"b":1,"a":[1.50,"\u00e9"]}`),
			line(`,"value":{"b":1,"a":[1.50,"\u00e9"]}`)},
		{"json with inner spaces kept", msg(`{ "a" : [ 1 , 2 ] }`), line(`,"value":{ "a" : [ 1 , 2 ] }`)},
		{"json number kept", msg(`1.50`), line(`,"value":1.50`)},
		{"json exponent kept", msg(`-0.1E+10`), line(`,"value":-0.1E+10`)},
		{"json null", msg(`null`), line(`,"value":null`)},
		{"json true", msg(`true`), line(`,"value":true`)},
		{"json array", msg(`[]`), line(`,"value":[]`)},
		{"json with newline as string", msg("{\n  \"a\": 1\n}"), line(`,"value":"{\n  \"a\": 1\n}"`)},
		{"json with CR as string", msg("[1,\r2]"), line(`,"value":"[1,\r2]"`)},
		{"json string as string", msg(`"abc"`), line(`,"value":"\"abc\""`)},
		{"json with surrounding space as string", msg(` 42 `), line(`,"value":" 42 "`)},
		{"json with trailing tab as string", msg("{}\t"), line(`,"value":"{}\t"`)},
		{"invalid json as string", msg(`{"a":}`), line(`,"value":"{\"a\":}"`)},
		{"text", msg("hello wörld"), line(`,"value":"hello wörld"`)},
		{"empty value", msg(""), line(`,"value":""`)},
		{"nil value", sink.Message{ID: "id1", Topic: "t", Time: testTime, Partition: sink.NoPartition}, line(`,"value":""`)},
		{"invalid utf-8", msg("a\xffb"), line(`,"value_b64":"Yf9i"`)},
		{"json-valid but invalid utf-8", msg("[\"\xff\"]"), line(`,"value_b64":"WyL/Il0="`)},
		{"escapes", msg("q\" b\\ n\n r\r t\t nul\x00 esc\x1b del\x7f \u2028\u2029 <&>"),
			line(`,"value":"q\" b\\ n\n r\r t\t nul\u0000 esc\u001b del` + "\x7f" + ` \u2028\u2029 <&>"`)},
		{"nil key omitted", msg("v"), line(`,"value":"v"`)},
		{"empty key", withKey(msg("v"), []byte{}), line(`,"key":"","value":"v"`)},
		{"text key", withKey(msg("v"), []byte("k é")), line(`,"key":"k é","value":"v"`)},
		{"binary key", withKey(msg("v"), []byte{0xff, 0}), line(`,"key_b64":"/wA=","value":"v"`)},
		{"headers in order, repeats kept",
			withHeaders(msg("v"), "b", "1", "a", "2", "b", "", "sluice-id", "x"),
			line(`,"headers":{"b":"1","a":"2","b":"","sluice-id":"x"},"value":"v"`)},
		{"one binary header makes all base64",
			withHeaders(msg("v"), "a", "text", "b", "\xff"),
			line(`,"headers_b64":{"a":"dGV4dA==","b":"/w=="},"value":"v"`)},
		{"escaped header name", withHeaders(msg("v"), "a\"b", "c"), line(`,"headers":{"a\"b":"c"},"value":"v"`)},
		{"partition", withPartition(msg("v"), 7),
			`{"id":"id1","topic":"t","value":"v","timestamp":"2026-01-02T03:04:05.123456789Z","partition":7}` + "\n"},
		{"partition 0", withPartition(msg("v"), 0),
			`{"id":"id1","topic":"t","value":"v","timestamp":"2026-01-02T03:04:05.123456789Z","partition":0}` + "\n"},
		{"invalid utf-8 in id", sink.Message{ID: "a\xffb", Topic: "t", Time: testTime, Partition: sink.NoPartition},
			`{"id":"a\ufffdb","topic":"t","value":""` + ts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendRecord(nil, &tt.m))
			if got != tt.want {
				t.Fatalf("AppendRecord:\n got %s\nwant %s", got, tt.want)
			}
			checkRoundTrip(t, &tt.m, []byte(got))
		})
	}
}

func TestAppendRecordTimestamp(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "2026-01-02T03:04:05Z"},
		{time.Date(2026, 1, 2, 3, 4, 5, 120000000, time.UTC), "2026-01-02T03:04:05.12Z"},
		{time.Date(2026, 1, 2, 5, 4, 5, 1, time.FixedZone("x", 2*3600)), "2026-01-02T03:04:05.000000001Z"},
		{time.Time{}, "0001-01-01T00:00:00Z"},
	}
	for _, tt := range tests {
		m := msg("v")
		m.Time = tt.in
		got := AppendRecord(nil, &m)
		if want := `"timestamp":"` + tt.want + `"`; !bytes.Contains(got, []byte(want)) {
			t.Errorf("%v: got %s, want %s", tt.in, got, want)
		}
		checkRoundTrip(t, &m, got)
	}
}

func TestAppendBatchAppends(t *testing.T) {
	a, b := msg("1"), msg("x")
	got := AppendBatch([]byte("prefix\n"), []sink.Message{a, b})
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	if len(lines) != 3 || lines[0] != "prefix" {
		t.Fatalf("AppendBatch: %q", got)
	}
	recs, err := ReadRecords(bytes.NewReader(got[len("prefix\n"):]))
	if err != nil || len(recs) != 2 || string(recs[0].Value) != "1" || string(recs[1].Value) != "x" {
		t.Fatalf("ReadRecords: %+v, %v", recs, err)
	}
}

func TestParseLineRejects(t *testing.T) {
	for _, line := range []string{
		``,
		`not json`,
		`{"topic":"t","value":1,"timestamp":"2026-01-02T03:04:05Z"}`,
		`{"id":"i","topic":"t","timestamp":"2026-01-02T03:04:05Z"}`,
		`{"id":"i","topic":"t","value":1,"value_b64":"AA==","timestamp":"2026-01-02T03:04:05Z"}`,
		`{"id":"i","topic":"t","key":"k","key_b64":"AA==","value":1,"timestamp":"2026-01-02T03:04:05Z"}`,
		`{"id":"i","topic":"t","value_b64":"!!","timestamp":"2026-01-02T03:04:05Z"}`,
		`{"id":"i","topic":"t","headers":{"a":1},"value":1,"timestamp":"2026-01-02T03:04:05Z"}`,
		`{"id":"i","topic":"t","headers":[],"value":1,"timestamp":"2026-01-02T03:04:05Z"}`,
		`{"id":"i","topic":"t","value":1,"timestamp":"yesterday"}`,
		`{"id":"i","topic":"t","value":1,"timestamp":"2026-01-02T03:04:05Z"`,
	} {
		if _, err := ParseLine([]byte(line)); err == nil {
			t.Errorf("ParseLine(%s) succeeded", line)
		}
	}
}

// checkRoundTrip decodes line with ParseLine and with encoding/json and
// compares both with m.
func checkRoundTrip(t *testing.T, m *sink.Message, line []byte) {
	t.Helper()
	if !bytes.HasSuffix(line, []byte("\n")) || bytes.Count(line, []byte("\n")) != 1 || bytes.IndexByte(line, '\r') >= 0 {
		t.Fatalf("not one NDJSON line: %q", line)
	}
	if !utf8.Valid(line) || !json.Valid(line) {
		t.Fatalf("not valid UTF-8 JSON: %q", line)
	}
	rec, err := ParseLine(line)
	if err != nil {
		t.Fatalf("ParseLine(%s): %v", line, err)
	}
	if want := string([]rune(m.ID)); rec.ID != want {
		t.Errorf("id %q, want %q", rec.ID, want)
	}
	if want := string([]rune(m.Topic)); rec.Topic != want {
		t.Errorf("topic %q, want %q", rec.Topic, want)
	}
	if !bytes.Equal(rec.Key, m.Key) || (rec.Key == nil) != (m.Key == nil) {
		t.Errorf("key %q (nil %v), want %q (nil %v)", rec.Key, rec.Key == nil, m.Key, m.Key == nil)
	}
	if !bytes.Equal(rec.Value, m.Value) || rec.Value == nil {
		t.Errorf("value %q, want %q", rec.Value, m.Value)
	}
	if len(rec.Headers) != len(m.Headers) {
		t.Errorf("headers %q, want %q", rec.Headers, m.Headers)
	}
	for i := range min(len(rec.Headers), len(m.Headers)) {
		g, w := rec.Headers[i], m.Headers[i]
		if g.Key != string([]rune(w.Key)) || !bytes.Equal(g.Value, w.Value) {
			t.Errorf("header %d: %q=%q, want %q=%q", i, g.Key, g.Value, w.Key, w.Value)
		}
	}
	if !rec.Time.Equal(m.Time) {
		t.Errorf("time %v, want %v", rec.Time, m.Time)
	}
	if rec.Partition != m.Partition {
		t.Errorf("partition %d, want %d", rec.Partition, m.Partition)
	}

	// Independent check with encoding/json: the field order, and the value
	// as a JSON document equal to the message when it was embedded.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	if raw, ok := fields["value"]; ok && raw[0] != '"' && !bytes.Equal(raw, m.Value) {
		t.Errorf("embedded value %s, want exactly %s", raw, m.Value)
	}
	if raw, ok := fields["value"]; ok && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil || s != string(m.Value) {
			t.Errorf("string value %q (%v), want %q", s, err, m.Value)
		}
	}
	checkFieldOrder(t, line)
}

var fieldOrder = []string{"id", "topic", "key", "key_b64", "headers", "headers_b64", "value", "value_b64", "timestamp", "partition"}

func checkFieldOrder(t *testing.T, line []byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(line))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	last := -1
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
		idx := -1
		for i, f := range fieldOrder {
			if f == tok {
				idx = i
			}
		}
		if idx <= last {
			t.Fatalf("field %v out of order or unknown in %s", tok, line)
		}
		last = idx
	}
}

func withKey(m sink.Message, k []byte) sink.Message { m.Key = k; return m }

func withPartition(m sink.Message, p int32) sink.Message { m.Partition = p; return m }

func withHeaders(m sink.Message, kv ...string) sink.Message {
	for i := 0; i+1 < len(kv); i += 2 {
		m.Headers = append(m.Headers, sink.Header{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return m
}

func TestParseLineRecordMessage(t *testing.T) {
	m := withHeaders(withPartition(withKey(msg(`{"x":1}`), []byte("k")), 2), "h", "v")
	rec, err := ParseLine(AppendRecord(nil, &m))
	if err != nil {
		t.Fatal(err)
	}
	got := rec.Message()
	got.Time, m.Time = got.Time.UTC(), m.Time.UTC()
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("Message() = %+v, want %+v", got, m)
	}
}

func FuzzEncode(f *testing.F) {
	f.Add("id-1", "orders", []byte("k"), false, []byte(`{"b":1,"a":[1.50,"\u00e9"]}`), "h", []byte("v"), int64(1767322800123456789), int32(-1))
	f.Add("", "", []byte(nil), true, []byte(""), "", []byte(""), int64(0), int32(0))
	f.Add("x", "t", []byte{0xff}, false, []byte{0, 1, 2, 0xff}, "bin", []byte{0xc3, 0x28}, int64(-1), int32(5))
	f.Add("x", "t", []byte{}, false, []byte("{\n\"a\":1}"), "a\"b", []byte("\u2028"), int64(42), int32(-1))
	f.Add("a\xffb", "t\x00", []byte("é"), false, []byte(`"quoted"`), "h\n", []byte("x"), int64(1), int32(2147483647))
	f.Add("x", "t", []byte("k"), false, []byte(" 1"), "h", []byte("v"), int64(1), int32(-2))
	f.Fuzz(func(t *testing.T, id, topic string, key []byte, keyNil bool, value []byte, hname string, hval []byte, nanos int64, part int32) {
		m := sink.Message{ID: id, Topic: topic, Key: key, Value: value, Time: time.Unix(0, nanos).UTC(), Partition: part}
		if keyNil {
			m.Key = nil
		} else if m.Key == nil {
			m.Key = []byte{}
		}
		if hname != "" || len(hval) > 0 {
			m.Headers = []sink.Header{{Key: hname, Value: hval}, {Key: hname, Value: []byte("second")}}
		}
		line := AppendRecord([]byte("previous\n"), &m)[len("previous\n"):]
		checkRoundTrip(t, &m, line)
	})
}

func BenchmarkAppendRecord(b *testing.B) {
	jsonValue := []byte(fmt.Sprintf(`{"user":"u-123","event":"click","props":{"x":1.5,"y":[1,2,3]},"pad":"%s"}`, strings.Repeat("p", 1024-80)))
	textValue := bytes.Repeat([]byte("log line with \"quotes\" and tabs\t "), 1024/34)
	binValue := bytes.Repeat([]byte{0xff, 0x00, 0x80, 0x7f}, 256)
	for _, bc := range []struct {
		name  string
		value []byte
	}{{"json", jsonValue}, {"text", textValue}, {"binary", binValue}} {
		b.Run(bc.name, func(b *testing.B) {
			m := sink.Message{
				ID: "0000000001-00000000000000012345", Topic: "events", Key: []byte("user-123"),
				Headers: []sink.Header{{Key: "sluice-id", Value: []byte("0000000001-00000000000000012345")}},
				Value:   bc.value, Time: testTime, Partition: sink.NoPartition,
			}
			buf := AppendRecord(nil, &m)
			b.SetBytes(int64(len(bc.value)))
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendRecord(buf[:0], &m)
			}
		})
	}
}

// TestEmbeddableMatchesEncodingJSON checks the shortcuts of embeddable
// against json.Valid.
func TestEmbeddableMatchesEncodingJSON(t *testing.T) {
	inputs := []string{
		"true", "false", "null", "tru", "truex", "nul", "falsey", "t", "n", "f",
		"0", "-0", "00", "01", "-", "1.", ".5", "1.5", "1e5", "1E+5", "1e-05", "1e", "1e+", "-1.50e3",
		"123abc", "2026-01-02 log line", "1 2", "0x10", "+1", "1.5.5", "--1", "9999999999999999999999",
		"{}", "[]", "{", "[INFO] x", `{"a":1}`, "[1,2", "x", "hello",
	}
	for _, in := range inputs {
		want := json.Valid([]byte(in)) && in[0] != '"'
		if got := embeddable([]byte(in)); got != want {
			t.Errorf("embeddable(%q) = %v, json.Valid says %v", in, got, want)
		}
	}
	// Numbers longer than readers take (jsonenc.MaxNumberLen), or out of
	// a float64's range, go as a JSON string, alone or inside a document.
	long := "0." + strings.Repeat("9", jsonenc.MaxNumberLen-1)
	for _, in := range []string{long, "-" + long, "[" + long + "]", `{"n":` + long + `}`, "1e400", "[-1e400]"} {
		if embeddable([]byte(in)) {
			t.Errorf("embeddable(%.40q…): a number too long or out of range", in)
		}
	}
	for _, in := range []string{long[:jsonenc.MaxNumberLen], "1e308", "1e-400"} {
		if !embeddable([]byte(in)) {
			t.Errorf("embeddable(%.40q…) = false", in)
		}
	}
}

func FuzzEmbeddable(f *testing.F) {
	for _, s := range []string{"1", "-0.5e+3", "true", "nul", `{"a":[1]}`, "[1,]", "01", `"s"`, " 1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		want := len(v) > 0 && utf8.Valid(v) && json.Valid(v) && v[0] != '"' &&
			!bytes.ContainsAny(v, "\r\n") && bytes.TrimSpace(v)[0] == v[0] && v[len(v)-1] != ' ' && v[len(v)-1] != '\t' &&
			jsonenc.Portable(v)
		if got := embeddable(v); got != want {
			t.Fatalf("embeddable(%q) = %v, want %v", v, got, want)
		}
	})
}
