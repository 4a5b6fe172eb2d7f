package agent

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluiceio/sluice/sink"
)

// README guarantee 7 ("a stuck topic … holds no message bytes between
// attempts … so any number of stuck topics leaves the reader free for the
// healthy ones"): a lane whose batch was split (a permanent error: one
// message is bad) and whose first half then fails transiently holds the
// second half in its batch, unevicted, with the whole read buffer counted
// as held. Enough topics in that state exceed the forwarder's budget and
// the reader stops: a healthy topic is not delivered.
func TestSplitThenStuckLanesDoNotStopTheReader(t *testing.T) {
	mem := &memSink{}
	mem.setFail(func(msgs []sink.Message) error {
		if !strings.HasPrefix(msgs[0].Topic, "stuck") {
			return nil
		}
		if len(msgs) > 1 {
			return sink.Permanent(errors.New("review: one record of the batch is invalid"))
		}
		return errTransient // then the upstream goes away
	})
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	val := strings.Repeat("x", 400<<10)
	for i := range 40 { // 40 topics × 2 × 400 KiB = 32 MiB, twice the budget
		body := []byte(val + "\n" + val + "\n")
		if r := do(t, "POST", ta.url+fmt.Sprintf("/v1/topics/stuck%d", i), "application/x-ndjson", body, nil); r.status != 202 {
			t.Fatalf("push %d: %+v", i, r)
		}
	}
	if r := do(t, "POST", ta.url+"/v1/topics/ok", "", []byte("healthy"), nil); r.status != 202 {
		t.Fatalf("push: %+v", r)
	}
	f := ta.a.fwds[0]
	waitTopic(t, mem, "ok", func() string {
		return fmt.Sprintf("forwarder holds %d bytes of a %d budget (lanes stuck mid-split keep their second half)", f.heldBytes(), f.budget)
	})
}
