package agent

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/sluiceio/sluice/sink"
)

func TestMsgRoundTrip(t *testing.T) {
	cases := []Msg{
		{Time: 1, Partition: -1, Topic: "t", Value: []byte("v"), Sinks: []string{"a"}},
		{Time: -5, Partition: 3, Topic: "orders", Key: []byte{}, ID: "up-1", Sinks: []string{"a", "b"},
			Headers: []sink.Header{{Key: "k", Value: []byte{0, 1}}, {Key: "k", Value: nil}}, Value: []byte{}},
		{Topic: "t", Key: []byte("key"), Sinks: []string{"s"}, Value: bytes.Repeat([]byte{0xff}, 300),
			Callback: "http://127.0.0.1:9/cb", IdemKey: "req-1", IdemHash: []byte{1, 2, 3}},
		{Topic: "t", Sinks: []string{"s"}, Value: []byte("v"), Meta: []byte{1, 0, 0, 0, 2}},
		{Topic: "t", Sinks: []string{"s"}, Value: []byte("v"), IdemKey: "k", IdemHash: []byte{9}, Meta: []byte{7}},
	}
	for i, m := range cases {
		b := appendMsg(nil, &m)
		if len(b) > encodedSize(&m) {
			t.Fatalf("case %d: encodedSize %d < %d", i, encodedSize(&m), len(b))
		}
		var got Msg
		if err := decodeMsg(b, &got); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		norm := func(m Msg) Msg {
			for j := range m.Headers {
				if len(m.Headers[j].Value) == 0 {
					m.Headers[j].Value = nil
				}
			}
			if len(m.Headers) == 0 {
				m.Headers = nil
			}
			if len(m.Value) == 0 {
				m.Value = nil
			}
			return m
		}
		if !reflect.DeepEqual(norm(got), norm(m)) {
			t.Fatalf("case %d:\n got %+v\nwant %+v", i, got, m)
		}
		if (m.Key == nil) != (got.Key == nil) {
			t.Fatalf("case %d: nil key not kept", i)
		}
	}
}

func FuzzDecodeMsg(f *testing.F) {
	m := Msg{Topic: "t", Key: []byte("k"), Sinks: []string{"a"}, Value: []byte("v"), Callback: "http://x", IdemKey: "i", IdemHash: []byte{9}}
	f.Add(appendMsg(nil, &m))
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Msg
		if decodeMsg(b, &m) != nil {
			return
		}
		// Whatever decodes must encode and decode to the same message.
		var again Msg
		if err := decodeMsg(appendMsg(nil, &m), &again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if again.Topic != m.Topic || !bytes.Equal(again.Value, m.Value) || !bytes.Equal(again.Key, m.Key) ||
			again.Callback != m.Callback || again.IdemKey != m.IdemKey || len(again.Sinks) != len(m.Sinks) {
			t.Fatalf("round trip changed the message")
		}
	})
}

func FuzzParseBatch(f *testing.F) {
	f.Add([]byte(`{"messages":[{"topic":"t","key":"k","value":{"a":[1,2]},"headers":{"h":"v"},"id":"x-1"}]}`))
	f.Add([]byte(`{"messages":[{"topic":"t","value_b64":"AAE="}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, e := parseBatch(body, 1<<20, func(int64) *apiError { return nil })
		if e != nil {
			if e.status < 400 || e.code == "" {
				t.Fatalf("bad error %+v", e)
			}
			return
		}
		for _, m := range msgs {
			if !sink.ValidTopic(m.Topic) || m.Value == nil {
				t.Fatalf("accepted a message with topic %q value %v", m.Topic, m.Value)
			}
		}
	})
}

func FuzzSplitNDJSON(f *testing.F) {
	f.Add([]byte("a\nb\r\n\nc"))
	f.Fuzz(func(t *testing.T, body []byte) {
		var total int
		splitNDJSON(body, func(line []byte) *apiError {
			if len(line) == 0 || bytes.IndexByte(line, '\n') >= 0 {
				t.Fatalf("bad line %q", line)
			}
			total += len(line)
			return nil
		})
		if total > len(body) {
			t.Fatal("lines longer than the body")
		}
	})
}

func FuzzMatchTopic(f *testing.F) {
	f.Add("orders.*", "orders.eu")
	f.Add("[a-", "a")
	f.Fuzz(func(t *testing.T, glob, topic string) {
		if ValidateGlobs([]string{glob}) != nil {
			return
		}
		_ = matchTopic([]string{glob}, topic)
		if glob == "*" && !matchTopic([]string{glob}, topic) && sink.ValidTopic(topic) {
			t.Fatalf("* did not match %q", topic)
		}
	})
}

func TestBoundedMapForgetsOldest(t *testing.T) {
	b := newBoundedMap[int, int](3)
	for i := 0; i < 5; i++ {
		b.put(i, i*10)
	}
	b.put(4, 41) // an update does not evict
	for i, want := range []bool{false, false, true, true, true} {
		if _, ok := b.get(i); ok != want {
			t.Fatalf("key %d present=%v, want %v", i, ok, want)
		}
	}
	if v, _ := b.get(4); v != 41 || len(b.m) != 3 {
		t.Fatalf("value %d, size %d", v, len(b.m))
	}
}
