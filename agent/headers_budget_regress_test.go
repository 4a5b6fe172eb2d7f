package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// The read-ahead budget charges the headers a record is decoded into, not
// only the record's bytes: decoding allocates one sink.Header (40 bytes, in
// a slice grown by append) and a key string per header, for a few bytes of
// record each, and POST /v1/messages takes any number of headers per
// message. A backlog of small header-heavy messages behind a hung sink kept
// 177 MiB alive against the 16 MiB budget.
func TestHeaderHeavyMessagesStayInTheReadAheadBudget(t *testing.T) {
	hs := make([]sink.Header, 200)
	for i := range hs {
		hs[i] = sink.Header{Key: fmt.Sprintf("h%03d", i)} // 6 bytes stored, ~50 decoded
	}
	f, grown := readAheadGrowth(t, 20_000, func(int) *Msg {
		return &Msg{Time: time.Now().UnixNano(), Partition: sink.NoPartition, Topic: "hdr", Sinks: []string{"mem"}, Headers: hs, Value: []byte{'x'}}
	})
	// The reader stops once it is over the budget: at most one read past
	// it, here one read of messages of 200 decoded headers each.
	if grown > 2*f.budget {
		t.Fatalf("a backlog of small header-heavy messages keeps %d MiB alive (accounted %d MiB, budget %d MiB)", grown>>20, f.heldBytes()>>20, f.budget>>20)
	}
}
