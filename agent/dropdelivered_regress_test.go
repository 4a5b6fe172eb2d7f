package agent

import (
	"bytes"
	"testing"

	"github.com/sluiceio/sluice/sink"
)

// Decision (e) and the status contract ("dropped" means the policy evicted
// an undelivered message): with drop_oldest on a sink cap, a stuck topic
// keeps the cursor at its oldest message, so the sink's backlog counts the
// healthy topic's messages that were already delivered. The policy then
// "drops" them: they are counted in the dropped metrics and their status
// (and callback report) says "dropped", although the sink received them.
func TestDropOldestNeverDropsDeliveredMessages(t *testing.T) {
	mem := &memSink{}
	mem.setFail(func(msgs []sink.Message) error {
		if msgs[0].Topic == "stuck" {
			return errTransient
		}
		return nil
	})
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{
		Name: "mem", Sink: mem.sink(), MaxBacklogBytes: 8192, BacklogPolicy: "drop_oldest",
	}}})
	if r := do(t, "POST", ta.url+"/v1/topics/stuck", "", []byte("a"), nil); r.status != 202 {
		t.Fatalf("push: %+v", r)
	}
	var ids []string
	for range 60 {
		r := do(t, "POST", ta.url+"/v1/topics/ok", "", bytes.Repeat([]byte("o"), 500), nil)
		if r.status != 202 {
			t.Fatalf("push: %+v", r)
		}
		ids = append(ids, r.ids[0])
	}
	waitFor(t, "healthy topic delivered", func() bool { return len(mem.messages()) == len(ids) })
	f := ta.a.fwds[0]
	waitFor(t, "the sink's cap enforced", func() bool { return f.cursor.BacklogBytes() <= 8192 })
	st := getStatus(t, ta, ids[0])
	if st.Status != "delivered" {
		t.Fatalf("message delivered to the sink reports %q (cursor %d; the stuck topic held it, the backlog policy then dropped what was already delivered)",
			st.Status, f.cursor.Acked())
	}
}
