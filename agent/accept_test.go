package agent

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sluiceio/sluice/sink"
)

// TestAcceptChainedID: a front-end's message carrying a sluice-id header
// keeps it as its id (chained agents) under the rule of HTTP's "id": 1–128
// printable ASCII bytes, one header only. Otherwise Accept refuses the
// request with ErrBadID and spools nothing.
func TestAcceptChainedID(t *testing.T) {
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: (&memSink{}).sink()}}})
	msg := func(hs ...sink.Header) []Message {
		return []Message{
			{Topic: "t", Value: []byte("ok"), Partition: sink.NoPartition},
			{Topic: "t", Value: []byte("v"), Headers: hs, Partition: sink.NoPartition},
		}
	}
	id := func(v string) sink.Header { return sink.Header{Key: sink.IDHeader, Value: []byte(v)} }
	for name, hs := range map[string][]sink.Header{
		"empty":         {id("")},
		"space":         {id("a b")},
		"129 bytes":     {id(strings.Repeat("x", 129))},
		"non-ASCII":     {id("caf\xc3\xa9")},
		"control":       {id("a\x00")},
		"two of them":   {id("a"), id("b")},
		"valid, then 2": {{Key: "k", Value: []byte("v")}, id("a"), id("a")},
	} {
		if _, err := ta.a.Accept(context.Background(), msg(hs...), AcceptOptions{}); !errors.Is(err, ErrBadID) {
			t.Errorf("%s: %v, want ErrBadID", name, err)
		}
	}
	acc, err := ta.a.Accept(context.Background(), msg(sink.Header{Key: "k", Value: []byte("v")}, id(strings.Repeat("x", 128))), AcceptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if acc.First != 1 || acc.IDs[1] != strings.Repeat("x", 128) {
		t.Fatalf("accepted %+v: want the first record of the spool, the second message keeping its id", acc)
	}
}
