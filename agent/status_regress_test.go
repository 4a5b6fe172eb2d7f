package agent

import (
	"testing"

	"github.com/sluiceio/sluice/sink"
)

// Guarantee 5 ("a stuck topic … does not block other topics of the same
// sink") and guarantee 8 ("a stuck topic costs its own budget, never
// another topic's pushes"): the lanes do deliver the healthy topic, but a
// message's status — and with it Sluice-Ack: delivered, GET
// /v1/messages/{id} and callback reports — is derived from the sink's
// cursor alone, which sits at the stuck topic's oldest message. So once
// one topic is stuck, every later push to any other topic of the sink
// reports "pending" although it was delivered: a Sluice-Ack: delivered
// push waits its whole Sluice-Timeout and answers pending, and callbacks
// for it are not sent, until the stuck topic recovers.
func TestStuckTopicDoesNotHoldOtherTopicsStatus(t *testing.T) {
	mem := &memSink{}
	mem.setFail(func(msgs []sink.Message) error {
		if msgs[0].Topic == "stuck" {
			return errTransient
		}
		return nil
	})
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	if r := do(t, "POST", ta.url+"/v1/topics/stuck", "", []byte("a"), nil); r.status != 202 {
		t.Fatalf("push: %+v", r)
	}
	r := do(t, "POST", ta.url+"/v1/topics/ok", "", []byte("b"),
		map[string]string{"Sluice-Ack": "delivered", "Sluice-Timeout": "5s"})
	if r.status != 202 || len(r.ids) != 1 {
		t.Fatalf("push: %+v", r)
	}
	var delivered bool
	for _, m := range mem.messages() {
		delivered = delivered || m.Topic == "ok"
	}
	st := getStatus(t, ta, r.ids[0])
	if r.ackStat != "delivered" || st.Status != "delivered" {
		t.Fatalf("topic ok's message: delivered to the sink %v, Sluice-Ack reply %q, status %q (sink cursor %d, held back by topic stuck)",
			delivered, r.ackStat, st.Status, ta.a.fwds[0].cursor.Acked())
	}
}
