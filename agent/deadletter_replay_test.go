package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// A replayed message keeps its identity and its statuses: these tests
// replay dead letters on real spools and read GET /v1/messages/{id} before
// and after a restart.

// refusing is a memSink whose permanent refusal can be switched.
func refusing() (*memSink, func(bool)) {
	mem := &memSink{}
	var mu sync.Mutex
	refuse := true
	mem.setFail(func([]sink.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if refuse {
			return sink.Permanent(sink.WithReason("invalid_record", errors.New("schema mismatch")))
		}
		return nil
	})
	return mem, func(v bool) { mu.Lock(); refuse = v; mu.Unlock() }
}

func listDL(t *testing.T, ta *testAgent) []DeadLetter {
	t.Helper()
	var v struct{ Deadletters []DeadLetter }
	r := do(t, "GET", ta.url+"/v1/control/deadletters?limit=1000", "", nil, ta.ctl())
	if err := json.Unmarshal(r.raw, &v); err != nil || r.status != 200 {
		t.Fatalf("dead-letter listing: %d %s", r.status, r.raw)
	}
	return v.Deadletters
}

func replayDL(t *testing.T, ta *testAgent, dlIDs ...uint64) {
	t.Helper()
	q := ""
	for i, id := range dlIDs {
		if i > 0 {
			q += ","
		}
		q += fmt.Sprint(id)
	}
	if r := do(t, "POST", ta.url+"/v1/control/deadletters/replay?dl_id="+q, "", nil, ta.ctl()); r.status != 200 {
		t.Fatalf("replay: %d %s", r.status, r.raw)
	}
}

func sinkStatus(t *testing.T, ta *testAgent, id, sinkName string) string {
	t.Helper()
	return getStatus(t, ta, id).Sinks[sinkName].Status
}

// A replayed message that fails again is a dead letter under its own id,
// and stays failed across a restart: the replay's tombstone names the old
// entry, not the message.
func TestReplayedMessageFailingAgainStaysFailed(t *testing.T) {
	mem, _ := refusing()
	dir := t.TempDir()
	opts := Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}}
	ta := startAgent(t, dir, opts)
	id := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("poison"), nil).ids[0]
	waitFor(t, "the dead letter", func() bool { return len(listDL(t, ta)) == 1 })
	first := listDL(t, ta)[0]
	replayDL(t, ta, first.DLID)
	waitFor(t, "the second dead letter", func() bool { return len(listDL(t, ta)) == 1 })
	again := listDL(t, ta)[0]
	if again.ID != id || again.DLID == first.DLID {
		t.Fatalf("dead letter after the replay: %+v, want id %s and a new entry", again, id)
	}
	waitFor(t, "failed", func() bool { return sinkStatus(t, ta, id, "mem") == "failed" })
	ta.stop(t)

	ta = startAgent(t, dir, opts)
	if st := getStatus(t, ta, id); st.Status != "failed" || st.Sinks["mem"].Reason != "invalid_record" {
		t.Fatalf("after a restart, a listed dead letter reads %+v", st)
	}
	if l := listDL(t, ta); len(l) != 1 || l[0].DLID != again.DLID {
		t.Fatalf("listing after restart: %+v", l)
	}
}

// Replaying a fan-out message's dead letter on one sink leaves its status
// on the other sinks as it was: a dead letter there stays failed, before
// and after a restart.
func TestReplayKeepsTheOtherSinksStatus(t *testing.T) {
	a, fixA := refusing()
	b, _ := refusing()
	c := &memSink{}
	dir := t.TempDir()
	opts := Options{Sinks: []SinkSpec{{Name: "a", Sink: a.sink()}, {Name: "b", Sink: b.sink()}, {Name: "c", Sink: c.sink()}}}
	ta := startAgent(t, dir, opts)
	id := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("v"), nil).ids[0]
	waitFor(t, "two dead letters", func() bool { return len(listDL(t, ta)) == 2 })
	var onA uint64
	for _, d := range listDL(t, ta) {
		if d.Sink == "a" {
			onA = d.DLID
		}
	}
	fixA(false)
	replayDL(t, ta, onA)
	waitFor(t, "the replay on a", func() bool { return len(a.messages()) == 1 })
	want := map[string]string{"a": "delivered", "b": "failed", "c": "delivered"}
	check := func(when string) {
		t.Helper()
		waitFor(t, "a delivered", func() bool { return sinkStatus(t, ta, id, "a") == "delivered" })
		st := getStatus(t, ta, id)
		for s, w := range want {
			if st.Sinks[s].Status != w {
				t.Fatalf("%s: status %+v, want %v", when, st, want)
			}
		}
		if st.Status != "failed" || st.Topic != "t" {
			t.Fatalf("%s: overall %+v, want failed on topic t", when, st)
		}
	}
	check("after the replay")
	ta.stop(t)
	ta = startAgent(t, dir, opts)
	check("after a restart")
}

// A chained message (pushed with an id) and a replayed one read the same
// after a restart: the kept ids are found again in the spool.
func TestKeptIDsSurviveARestart(t *testing.T) {
	mem := &memSink{}
	bad, _ := refusing()
	dir := t.TempDir()
	opts := Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink(), Topics: []string{"t"}}, {Name: "bad", Sink: bad.sink(), Topics: []string{"r"}}}}
	ta := startAgent(t, dir, opts)
	r := do(t, "POST", ta.url+"/v1/messages", "application/json", []byte(`{"messages":[{"topic":"t","value":"v","id":"upstream-7"}]}`), nil)
	if r.status != 202 || r.ids[0] != "upstream-7" {
		t.Fatalf("push: %+v", r)
	}
	waitFor(t, "delivered", func() bool { return getStatus(t, ta, "upstream-7").Status == "delivered" })
	// A local-id message dead-lettered, then replayed while its sink is down.
	local := do(t, "POST", ta.url+"/v1/topics/r", "", []byte("x"), nil).ids[0]
	waitFor(t, "the dead letter", func() bool { return len(listDL(t, ta)) == 1 })
	bad.setFail(func([]sink.Message) error { return errTransient }) // the replay stays pending
	replayDL(t, ta, listDL(t, ta)[0].DLID)
	waitFor(t, "pending again", func() bool { return getStatus(t, ta, local).Status == "pending" })
	ta.stop(t)

	ta = startAgent(t, dir, opts)
	if st := getStatus(t, ta, "upstream-7"); st.Status != "delivered" || st.Topic != "t" {
		t.Fatalf("chained message after a restart: %+v", st)
	}
	if st := getStatus(t, ta, local); st.Status != "pending" {
		t.Fatalf("replayed message after a restart: %+v, want pending", st)
	}
	bad.setFail(nil)
	waitFor(t, "the replay delivered", func() bool { return getStatus(t, ta, local).Status == "delivered" })
	if m := bad.messages(); len(m) != 1 || m[0].ID != local {
		t.Fatalf("replayed delivery: %+v", m)
	}
}

// A callback report of a message whose dead letter is replayed before the
// report got through says what the replay came to, not what the first
// attempt's cursor says: it waits while the replay is pending, then reads
// delivered.
func TestCallbackReportAfterReplay(t *testing.T) {
	cbs := newCBServer(t)
	cbs.fail = 1 << 30 // the receiver is down until the replay is made
	mem, _ := refusing()
	ta := startAgent(t, t.TempDir(), Options{CallbackBackoff: 5 * time.Millisecond, CallbackAttempts: 100, // never given up here
		Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	id := do(t, "POST", ta.url+"/v1/topics/t", "", []byte("v"), map[string]string{"Sluice-Callback": cbs.srv.URL}).ids[0]
	waitFor(t, "the dead letter", func() bool { return len(listDL(t, ta)) == 1 })
	mem.setFail(func([]sink.Message) error { return errTransient }) // the replay stays pending
	replayed := time.Now()
	replayDL(t, ta, listDL(t, ta)[0].DLID)
	cbs.mu.Lock()
	// The receiver is back; an attempt made before the replay may still
	// be on its way (on a loaded machine), and is refused as the receiver
	// was down when it was made.
	cbs.fail, cbs.refuseBefore = 0, replayed
	cbs.mu.Unlock()
	// While the replayed message is pending, its report waits: a report
	// carries an outcome (delivered, failed, dropped), and none would
	// follow a "pending" one.
	time.Sleep(1500 * time.Millisecond) // past the first deferral (not a timing claim)
	if rep, ok := cbs.byID()[id]; ok {
		t.Fatalf("report sent while the replayed message is pending: %+v", rep)
	}
	mem.setFail(nil)
	waitFor(t, "the report", func() bool { _, ok := cbs.byID()[id]; return ok })
	if rep := cbs.byID()[id]; rep.Status != "delivered" || rep.Sinks["mem"].Status != "delivered" {
		t.Fatalf("report after the replay was delivered: %+v, want delivered", rep)
	}
}
