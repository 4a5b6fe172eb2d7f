package amqp1

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluiceio/sluice/internal/testserver/artemis"
	"github.com/sluiceio/sluice/sink"
)

// TestArtemis runs everything that needs a broker with auto-create on, on
// one broker (its start-up is the expensive part). brokerRestart kills the
// broker: it runs last.
func TestArtemis(t *testing.T) {
	b := startBroker(t, artemisOptions())
	t.Run("Conformance", func(t *testing.T) { conformance(t, b) })
	t.Run("Variety", func(t *testing.T) { variety(t, b) })
	t.Run("ResourceLimit", func(t *testing.T) { resourceLimit(t, b) })
	t.Run("PermissionRevoked", func(t *testing.T) { permissionRevoked(t, b) })
	t.Run("LinkDetached", func(t *testing.T) { linkDetached(t, b) })
	t.Run("ConnectionClosed", func(t *testing.T) { connectionClosed(t, b) })
	t.Run("CloseHungBroker", func(t *testing.T) { closeHungBroker(t, b) })
	t.Run("BrokerRestart", func(t *testing.T) { brokerRestart(t, b) })
}

// TestArtemisNoAutoCreate: a broker that does not create addresses on
// demand, with the addresses "orders" and "doomed", and a TLS acceptor.
func TestArtemisNoAutoCreate(t *testing.T) {
	b := startBroker(t, artemis.Options{
		TLS:          true,
		Users:        map[string]string{adminUser: adminPass},
		NoAutoCreate: true,
		Addresses: `<address name="orders"><anycast><queue name="orders"/></anycast></address>
      <address name="doomed"><anycast><queue name="doomed"/></anycast></address>`,
	})
	t.Run("UnknownAddress", func(t *testing.T) { unknownAddress(t, b) })
	t.Run("AddressDeleted", func(t *testing.T) { addressDeleted(t, b) })
	t.Run("BadCredentials", func(t *testing.T) { badCredentials(t, b) })
	t.Run("TLS", func(t *testing.T) { overTLS(t, b) })
}

// overTLS: amqps:// with the broker's CA delivers; without it (system
// roots) the certificate is refused: transient, reason tls.
func overTLS(t *testing.T, b *artemis.Broker) {
	c := newClient(t, b)
	url := "amqps://" + adminUser + ":" + adminPass + "@" + b.TLSAddr()
	tlsCfg, err := TLSConfig(b.CAFile, "")
	if err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, Options{URL: url, Address: "orders", TLS: tlsCfg})
	write(t, w, []sink.Message{msg("tls-1", "t", "", "over TLS")})
	got := c.readTopics(t, "", "orders") // earlier subtests left theirs too
	if len(got) == 0 || got[len(got)-1].ID != "tls-1" || string(got[len(got)-1].Value) != "over TLS" {
		t.Fatalf("read %+v", got)
	}

	untrusted := newWriter(t, Options{URL: url, Address: "orders"})
	err = untrusted.Write(context.Background(), []sink.Message{msg("tls-2", "t", "", "x")})
	if err == nil || sink.IsPermanent(err) || sink.Reason(err) != ReasonTLS {
		t.Fatalf("unknown CA: %v (reason %s), want transient %s", err, sink.Reason(err), ReasonTLS)
	}
}

// clock is a settable Options.Now.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// unknownAddress: a message whose address does not exist fails alone
// while its batch-mates are delivered: transient within the grace (the
// address may be about to be created), Permanent after it.
func unknownAddress(t *testing.T, b *artemis.Broker) {
	c := newClient(t, b)
	clk := &clock{now: time.Now()}
	w := newWriter(t, Options{URL: b.URL(adminUser, adminPass), Address: "{key}", UnknownAddressGrace: time.Minute, Now: clk.Now})
	batch := func(round string) []sink.Message {
		return []sink.Message{msg(round+"-1", "t", "orders", "a"), msg(round+"-2", "t", "nope", "b"), msg(round+"-3", "t", "orders", "c")}
	}
	check := func(err error, permanent bool) {
		t.Helper()
		errs := batchErrors(t, err, 3)
		if errs[0] != nil || errs[2] != nil {
			t.Fatalf("batch-mates failed: %v / %v", errs[0], errs[2])
		}
		e := errs[1]
		if e == nil || sink.Reason(e) != ReasonUnknownAddress || sink.IsPermanent(e) != permanent {
			t.Fatalf("message to the missing address: %v (reason %s, permanent %v), want permanent=%v %s",
				e, sink.Reason(e), sink.IsPermanent(e), permanent, ReasonUnknownAddress)
		}
		if !hasAll(e.Error(), "nope", "amqp:not-found") {
			t.Fatalf("error %q does not name the address and the broker's condition", e)
		}
	}
	check(w.Write(context.Background(), batch("a")), false)
	clk.now = clk.now.Add(30 * time.Second)
	check(w.Write(context.Background(), batch("b")), false)
	clk.now = clk.now.Add(31 * time.Second)
	check(w.Write(context.Background(), batch("c")), true)
	var ids []string
	for _, m := range c.readTopics(t, "", "orders") {
		ids = append(ids, m.ID)
	}
	if strings.Join(ids, ",") != "a-1,a-3,b-1,b-3,c-1,c-3" {
		t.Fatalf("orders holds %v", ids)
	}
}

// addressDeleted: an address deleted under an attached link makes Artemis
// reject each message with amqp:not-found (the link is not detached):
// transient within the grace, like an address that never existed.
func addressDeleted(t *testing.T, b *artemis.Broker) {
	c := newClient(t, b)
	clk := &clock{now: time.Now()}
	w := newWriter(t, Options{URL: b.URL(adminUser, adminPass), Address: "doomed", UnknownAddressGrace: time.Minute, Now: clk.Now})
	write(t, w, []sink.Message{msg("d-0", "t", "", "x")})
	if _, err := c.manage(t, "broker", "destroyQueue", `["doomed", true, true]`); err != nil {
		t.Fatal(err)
	}
	err := w.Write(context.Background(), []sink.Message{msg("d-1", "t", "", "x")})
	if err == nil || sink.IsPermanent(err) || sink.Reason(err) != ReasonUnknownAddress || !strings.Contains(err.Error(), "rejected") {
		t.Fatalf("after the address was deleted: %v (reason %s), want transient %s", err, sink.Reason(err), ReasonUnknownAddress)
	}
	clk.now = clk.now.Add(2 * time.Minute)
	err = w.Write(context.Background(), []sink.Message{msg("d-2", "t", "", "x")})
	var be *sink.BatchError
	if !errors.As(err, &be) || !sink.IsPermanent(be.Errs[0]) || sink.Reason(be.Errs[0]) != ReasonUnknownAddress {
		t.Fatalf("after the grace: %v, want a BatchError with Permanent %s", err, ReasonUnknownAddress)
	}
}

// badCredentials: a wrong password is a transient auth failure, the gauge
// says so, nothing is Permanent; once the broker accepts the password the
// sink delivers again without being rebuilt.
func badCredentials(t *testing.T, b *artemis.Broker) {
	set := metrics.NewSet()
	w := newWriter(t, Options{URL: b.URL("rotated", "new-pw"), Address: "orders", Metrics: set, Name: "creds"})
	b.SetPassword(t, "rotated", "old-pw")
	for range 3 {
		err := w.Write(context.Background(), []sink.Message{msg("cred-1", "t", "", "x")})
		var be *sink.BatchError
		if err == nil || sink.IsPermanent(err) || errors.As(err, &be) || sink.Reason(err) != ReasonAuth {
			t.Fatalf("wrong password: %v (reason %s), want a transient whole-batch %s error", err, sink.Reason(err), ReasonAuth)
		}
		if strings.Contains(err.Error(), "new-pw") {
			t.Fatalf("error shows the password: %v", err)
		}
	}
	if !strings.Contains(metricsText(set), `sluice_sink_auth_failing{sink="creds"} 1`) {
		t.Fatalf("auth gauge not set:\n%s", metricsText(set))
	}
	b.SetPassword(t, "rotated", "new-pw")
	deadline := time.Now().Add(waitLimit)
	for {
		err := w.Write(context.Background(), []sink.Message{msg("cred-2", "t", "", "x")})
		if err == nil {
			break
		}
		if sink.IsPermanent(err) || time.Now().After(deadline) {
			t.Fatalf("after the password was fixed: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(metricsText(set), `sluice_sink_auth_failing{sink="creds"} 0`) {
		t.Fatalf("auth gauge not cleared:\n%s", metricsText(set))
	}
}

// closeHungBroker: with the broker frozen (SIGSTOP) under an open
// connection, a Write blocks; Close with a short ctx returns, the Write
// returns ErrClosed (transient), and a second Close returns the same.
func closeHungBroker(t *testing.T, b *artemis.Broker) {
	w := newWriter(t, Options{URL: b.URL(adminUser, adminPass), Address: unique("hung")})
	write(t, w, []sink.Message{msg("h-0", "t", "", "x")})
	resume := b.Pause(t)
	defer resume()
	done := make(chan error, 1)
	go func() { done <- w.Write(context.Background(), []sink.Message{msg("h-1", "t", "", "x")}) }()
	select {
	case err := <-done:
		t.Fatalf("Write on a frozen broker returned at once: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- w.Close(ctx) }()
	var first error
	select {
	case first = <-closed:
	case <-time.After(waitLimit):
		t.Fatal("Close did not return")
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) || sink.IsPermanent(err) {
			t.Fatalf("blocked Write: %v, want ErrClosed", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Write still blocked after Close")
	}
	if again := w.Close(context.Background()); fmt.Sprint(again) != fmt.Sprint(first) {
		t.Fatalf("second Close: %v, first: %v", again, first)
	}
}
