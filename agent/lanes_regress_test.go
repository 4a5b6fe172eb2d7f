package agent

import (
	"bytes"
	"fmt"
	"testing"
)

// The forwarder's memory bound ("what the forwarder holds in memory is
// bounded by a per-sink budget"; guarantee 8: never unbounded memory): a
// lane — its struct and its goroutine — is made for every topic the sink
// ever saw and is never let go, even when idle and empty. Memory then grows
// with the number of distinct topics pushed over the agent's life, outside
// any budget.
func TestIdleLanesAreReleased(t *testing.T) {
	mem := &memSink{}
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	const topics = 2000
	var body bytes.Buffer
	body.WriteString(`{"messages":[`)
	for i := range topics {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"topic":"user-%d","value":"x"}`, i)
	}
	body.WriteString(`]}`)
	if r := do(t, "POST", ta.url+"/v1/messages", "application/json", body.Bytes(), nil); r.status != 202 {
		t.Fatalf("push: %+v", r)
	}
	f := ta.a.fwds[0]
	// 2,000 one-message lanes take about a second under -race, several on
	// a loaded machine: wait while deliveries go on.
	waitCount(t, "delivered", func() int64 { return int64(len(mem.messages())) }, topics, func() string { return forwarderState(f) })
	waitFor(t, "cursor at the end", func() bool { return f.cursor.Acked() >= ta.sp.LastSeq() })
	// Every message is delivered and acknowledged: nothing needs a lane.
	// A small number of recently used lanes may be kept as a cache.
	lanes := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.lanes)
	}
	waitFor(t, "idle lanes released", func() bool { return lanes() <= idleLanes })
}
