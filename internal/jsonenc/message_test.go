package jsonenc

import (
	"testing"

	"github.com/sluiceio/sluice/sink"
)

func TestAppendKeyAndHeaders(t *testing.T) {
	cases := []struct {
		key  []byte
		hs   []sink.Header
		want string
	}{
		{nil, nil, ``},
		{[]byte{}, nil, `,"key":""`},
		{[]byte("user-7"), []sink.Header{{Key: "a", Value: []byte("x\"y")}}, `,"key":"user-7","headers":{"a":"x\"y"}`},
		{[]byte{0xff, 0x00, 0x2a, 0x80}, nil, `,"key_b64":"/wAqgA=="`},
		// One value that is not UTF-8 puts every value in base64, in order.
		{nil, []sink.Header{{Key: "b", Value: []byte("ok")}, {Key: "trace", Value: []byte{0xfe, 0x01}}},
			`,"headers_b64":{"b":"b2s=","trace":"/gE="}`},
	}
	for _, c := range cases {
		got := string(AppendHeaders(AppendKey(nil, c.key), c.hs))
		if got != c.want {
			t.Errorf("key %x headers %v: %s, want %s", c.key, c.hs, got, c.want)
		}
	}
}
