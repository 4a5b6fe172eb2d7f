package amqp1

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluiceio/sluice/internal/testserver/artemis"
	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/sinktest"
)

// batchErrors returns the per-message errors of a Write result (nil when
// it returned nil); a whole-batch error is copied to every message.
func batchErrors(t testing.TB, err error, n int) []error {
	t.Helper()
	errs := make([]error, n)
	var be *sink.BatchError
	switch {
	case err == nil:
	case errors.As(err, &be):
		if len(be.Errs) != n {
			t.Fatalf("BatchError with %d entries for %d messages", len(be.Errs), n)
		}
		copy(errs, be.Errs)
	default:
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}

func metricsText(set *metrics.Set) string {
	var b bytes.Buffer
	set.WritePrometheus(&b)
	return b.String()
}

// variety writes sinktest.Variety: every message arrives byte for byte,
// the one with a repeated header name fails alone, Permanent, bad_header.
func variety(t *testing.T, b *artemis.Broker) {
	c := newClient(t, b)
	prefix := unique("variety") + "."
	w := newWriter(t, Options{URL: b.URL(adminUser, adminPass), Address: prefix + "{topic}"})
	msgs := sinktest.Variety(caps)
	want := sinktest.Clone(msgs)
	errs := batchErrors(t, w.Write(context.Background(), msgs), len(msgs))
	var delivered []sink.Message
	for i, e := range errs {
		repeated := len(want[i].Headers) > 1 && want[i].Headers[0].Key == "dup"
		switch {
		case repeated && (!sink.IsPermanent(e) || sink.Reason(e) != ReasonBadHeader):
			t.Errorf("message %d (repeated header): %v (reason %s), want Permanent %s", i, e, sink.Reason(e), ReasonBadHeader)
		case !repeated && e != nil:
			t.Errorf("message %d: %v, want delivered", i, e)
		case !repeated:
			delivered = append(delivered, want[i])
		}
	}
	sinktest.Scribble(msgs)
	if len(delivered) != len(msgs)-1 {
		t.Fatalf("%d delivered, want %d", len(delivered), len(msgs)-1)
	}
	got := c.readTopics(t, prefix, sinktest.TopicA, sinktest.TopicB)
	if err := sinktest.Diff(caps, delivered, got); err != nil {
		t.Fatal(err)
	}
}

// resourceLimit: an address that is full (Artemis FAIL policy) rejects
// with amqp:resource-limit-exceeded. That is transient: nothing is
// permanent, what was accepted is delivered, the rest goes through once
// the queue drains.
func resourceLimit(t *testing.T, b *artemis.Broker) {
	c := newClient(t, b)
	addr := "small." + unique("q")
	set := metrics.NewSet()
	w := newWriter(t, Options{URL: b.URL(adminUser, adminPass), Address: addr, Metrics: set, Name: "small"})
	var msgs []sink.Message
	for i := range 10 {
		msgs = append(msgs, msg(fmt.Sprintf("full-%d", i), "t", "", strings.Repeat("x", 8000)))
	}
	errs := batchErrors(t, w.Write(context.Background(), msgs), len(msgs))
	var retry []sink.Message
	accepted := 0
	for i, e := range errs {
		switch {
		case e == nil:
			accepted++
		case sink.IsPermanent(e):
			t.Fatalf("message %d: %v is Permanent: a full address would dead-letter the backlog", i, e)
		case sink.Reason(e) != ReasonResourceLimit && sink.Reason(e) != ReasonNotSent:
			t.Fatalf("message %d: reason %s (%v), want %s", i, sink.Reason(e), e, ReasonResourceLimit)
		default:
			retry = append(retry, msgs[i])
		}
	}
	if accepted == 0 || len(retry) == 0 {
		t.Fatalf("%d accepted, %d refused: the address should fill up part way", accepted, len(retry))
	}
	if !strings.Contains(errs[len(errs)-1].Error(), "amqp:resource-limit-exceeded") {
		t.Fatalf("error %q does not name the broker's condition", errs[len(errs)-1])
	}
	if !strings.Contains(metricsText(set), `sluice_sink_failed_messages_total{sink="small",reason="resource_limit"}`) {
		t.Fatalf("metrics:\n%s", metricsText(set))
	}
	got := c.receive(t, addr)
	if len(got) != accepted {
		t.Fatalf("queue holds %d, %d were accepted", len(got), accepted)
	}
	deadline := time.Now().Add(waitLimit)
	for len(retry) > 0 { // the queue is drained between rounds: a few fit each time
		errs := batchErrors(t, w.Write(context.Background(), retry), len(retry))
		var again []sink.Message
		for i, e := range errs {
			if e != nil {
				if sink.IsPermanent(e) {
					t.Fatal(e)
				}
				again = append(again, retry[i])
			}
		}
		if len(again) == len(retry) {
			// The broker frees the space of consumed messages shortly
			// after their acknowledgements.
			if time.Now().After(deadline) {
				t.Fatalf("nothing accepted after the queue was drained: %v", errs[0])
			}
			time.Sleep(50 * time.Millisecond)
		}
		got = append(got, c.receive(t, addr)...)
		retry = again
	}
	if len(got) != len(msgs) {
		t.Fatalf("%d messages arrived, want %d", len(got), len(msgs))
	}
}

// permissionRevoked: Artemis rejects each message of a user that lost its
// send permission with amqp:unauthorized-access. Transient (reason auth,
// the auth gauge set), never Permanent; delivery resumes once the
// permission is back.
func permissionRevoked(t *testing.T, b *artemis.Broker) {
	b.SetPassword(t, "limited", "limited-pw")
	c := newClient(t, b)
	addr := unique("perm")
	set := metrics.NewSet()
	w := newWriter(t, Options{URL: b.URL("limited", "limited-pw"), Address: addr, Metrics: set, Name: "perm"})
	write(t, w, []sink.Message{msg("perm-0", "t", "", "before")})

	b.Revoke(t, "limited", false)
	deadline := time.Now().Add(waitLimit)
	var err error
	for { // the broker notices the roles file within its reload period
		err = w.Write(context.Background(), []sink.Message{msg("perm-1", "t", "", "while revoked"), msg("perm-2", "t", "", "while revoked")})
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err == nil {
		t.Fatal("writes still accepted after the permission was revoked")
	}
	for i, e := range batchErrors(t, err, 2) {
		if e == nil {
			continue
		}
		if sink.IsPermanent(e) || sink.Reason(e) != ReasonAuth && sink.Reason(e) != ReasonNotSent {
			t.Fatalf("message %d: %v (reason %s, permanent %v), want transient %s", i, e, sink.Reason(e), sink.IsPermanent(e), ReasonAuth)
		}
	}
	if !strings.Contains(metricsText(set), `sluice_sink_auth_failing{sink="perm"} 1`) {
		t.Fatalf("auth gauge not set:\n%s", metricsText(set))
	}

	b.Revoke(t, "limited", true)
	deadline = time.Now().Add(waitLimit)
	for {
		err = w.Write(context.Background(), []sink.Message{msg("perm-3", "t", "", "after")})
		if err == nil {
			break
		}
		if sink.IsPermanent(err) || time.Now().After(deadline) {
			t.Fatalf("after the permission came back: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(metricsText(set), `sluice_sink_auth_failing{sink="perm"} 0`) {
		t.Fatalf("auth gauge not cleared:\n%s", metricsText(set))
	}
	ids := map[string]bool{}
	for _, m := range c.readTopics(t, "", addr) {
		ids[m.ID] = true
	}
	if !ids["perm-0"] || !ids["perm-3"] {
		t.Fatalf("delivered ids %v", ids)
	}
}

// linkDetached: a link that dies under a pipelined Write (closed here from
// outside the Writer, as a broker's detach would end it) never reports a
// message delivered that the broker did not accept, and the next Write
// attaches a new link.
func linkDetached(t *testing.T, b *artemis.Broker) {
	c := newClient(t, b)
	addr := unique("detach")
	w := newWriter(t, Options{URL: b.URL(adminUser, adminPass), Address: addr})
	write(t, w, []sink.Message{msg("warm", "t", "", "x")})
	accepted := map[string]bool{"warm": true}
	hit := false
	for round := 0; round < 20 && !hit; round++ {
		l := w.conn.links[addr] // no Write runs: safe to read
		var msgs []sink.Message
		for i := range 3000 {
			msgs = append(msgs, msg(fmt.Sprintf("r%d-%d", round, i), "t", "", strings.Repeat("v", 200)))
		}
		go func() {
			time.Sleep(time.Duration(round%5) * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = l.snd.Close(ctx)
		}()
		errs := batchErrors(t, w.Write(context.Background(), msgs), len(msgs))
		for i, e := range errs {
			switch {
			case e == nil:
				accepted[msgs[i].ID] = true
			case sink.IsPermanent(e):
				t.Fatalf("message %d: %v is Permanent", i, e)
			default:
				hit = true
			}
		}
		// The next Write works again, on a new link.
		write(t, w, []sink.Message{msg(fmt.Sprintf("after-%d", round), "t", "", "x")})
		accepted[fmt.Sprintf("after-%d", round)] = true
	}
	if !hit {
		t.Fatal("the link never died under a Write in 20 rounds")
	}
	// A link that dies between Writes costs no failed Write: the next one
	// attaches a new link before sending.
	idle := w.conn.links[addr]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := idle.snd.Close(ctx); err != nil {
		t.Fatal(err)
	}
	write(t, w, []sink.Message{msg("after-idle-detach", "t", "", "x")})
	accepted["after-idle-detach"] = true
	if w.conn.links[addr] == idle {
		t.Fatal("the dead link is still in use")
	}
	got := map[string]bool{}
	for _, m := range c.readTopics(t, "", addr) {
		got[m.ID] = true
	}
	for id := range accepted {
		if !got[id] {
			t.Fatalf("message %s was reported delivered but is not in the queue", id)
		}
	}
}

// connectionClosed: the broker closes the sink's connection (management,
// as on a broker-side kick) while it stays up; the sink reconnects and
// delivers, never dead-letters.
func connectionClosed(t *testing.T, b *artemis.Broker) {
	b.SetPassword(t, "kicked", "kicked-pw")
	c := newClient(t, b)
	addr := unique("kick")
	w := newWriter(t, Options{URL: b.URL("kicked", "kicked-pw"), Address: addr})
	write(t, w, []sink.Message{msg("k-0", "t", "", "x")})
	if _, err := c.manage(t, "broker", "closeConnectionsForUser", `["kicked"]`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLimit)
	failures := 0
	for {
		err := w.Write(context.Background(), []sink.Message{msg("k-1", "t", "", "x")})
		if err == nil {
			break
		}
		failures++
		if sink.IsPermanent(err) || time.Now().After(deadline) {
			t.Fatalf("after the broker closed the connection: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d failed Writes before the sink was connected again", failures)
	ids := map[string]bool{}
	for _, m := range c.readTopics(t, "", addr) {
		ids[m.ID] = true
	}
	if !ids["k-0"] || !ids["k-1"] {
		t.Fatalf("delivered %v", ids)
	}
}

// brokerRestart: the broker is killed mid-stream and restarted; Writes
// fail transiently meanwhile, and every message a Write reported
// delivered is in the queue afterwards (the journal is synced).
func brokerRestart(t *testing.T, b *artemis.Broker) {
	addr := unique("restart")
	w := newWriter(t, Options{URL: b.URL(adminUser, adminPass), Address: addr, WriteTimeout: 2 * time.Second})
	accepted := map[string]bool{}
	n := 0
	batch := func() error {
		var msgs []sink.Message
		for range 50 {
			msgs = append(msgs, msg(fmt.Sprintf("rs-%d", n), "t", "", "payload"))
			n++
		}
		err := w.Write(context.Background(), msgs)
		for i, e := range batchErrors(t, err, len(msgs)) {
			if e == nil {
				accepted[msgs[i].ID] = true
			} else if sink.IsPermanent(e) {
				t.Fatalf("%s: %v is Permanent", msgs[i].ID, e)
			}
		}
		return err
	}
	for range 5 {
		if err := batch(); err != nil {
			t.Fatal(err)
		}
	}
	b.Kill(t)
	failed := 0
	for range 3 {
		if batch() != nil {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("Writes succeeded with the broker down")
	}
	b.Restart(t)
	deadline := time.Now().Add(waitLimit)
	for batch() != nil {
		if time.Now().After(deadline) {
			t.Fatal("no Write succeeded after the restart")
		}
		time.Sleep(100 * time.Millisecond)
	}
	c := newClient(t, b)
	got := map[string]bool{}
	for _, m := range c.readTopics(t, "", addr) {
		got[m.ID] = true
	}
	lost := 0
	for id := range accepted {
		if !got[id] {
			lost++
		}
	}
	if lost != 0 {
		t.Fatalf("%d of %d accepted messages lost across the restart", lost, len(accepted))
	}
	t.Logf("restart: %d accepted, 0 lost, broker back in %v", len(accepted), b.StartupTime.Round(time.Millisecond))
}
