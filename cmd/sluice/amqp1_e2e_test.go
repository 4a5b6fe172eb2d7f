package main

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/loadgen"
	"github.com/sluiceio/sluice/internal/testserver/artemis"
	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/amqp1"
)

// The broker's admin user in these tests; sluice connects as "sluice".
const (
	artemisAdmin   = "admin"
	artemisAdminPw = "admin-pw"
)

func startArtemis(t *testing.T, o artemis.Options) (*artemis.Broker, *artemis.Client) {
	t.Helper()
	if o.Users == nil {
		o.Users = map[string]string{}
	}
	o.Users[artemisAdmin] = artemisAdminPw
	b := artemis.Start(t, o)
	t.Logf("artemis %s up in %v", artemis.Version, b.StartupTime.Round(time.Millisecond))
	return b, b.Dial(t, artemisAdmin, artemisAdminPw)
}

// readQueue consumes queue q and returns what sluice delivered to it, in
// queue order, with the load generator's fields parsed from the values.
func readQueue(t *testing.T, c *artemis.Client, q string) []loadgen.Delivered {
	t.Helper()
	var out []loadgen.Delivered
	for _, m := range c.Receive(t, q) {
		d := loadgen.Delivered{Topic: q, N: -1, Partition: -1, Offset: -1}
		if id, ok := amqp1.PropertyBytes(m.ApplicationProperties[sink.IDHeader]); ok {
			d.ID = string(id)
		}
		if k, ok := amqp1.PropertyBytes(m.ApplicationProperties[amqp1.KeyProperty]); ok {
			d.Key = string(k)
		}
		if f, ok := loadgen.ParseValue(m.GetData()); ok {
			d.Run, d.N = f.Run, f.N
		}
		if m.Properties == nil || m.Properties.MessageID != d.ID || m.Header == nil || !m.Header.Durable {
			t.Fatalf("message %s: properties %+v header %+v", d.ID, m.Properties, m.Header)
		}
		out = append(out, d)
	}
	return out
}

// TestE2EAMQP1BrokerRestart: under load, the broker is killed (SIGKILL)
// and restarted on the same port and journal; every push is answered 202
// throughout, and every acknowledged message is in the queue afterwards,
// in push order per key (duplicates are reported).
func TestE2EAMQP1BrokerRestart(t *testing.T) {
	// StaticUsers: a spurious refusal of one message by the broker's
	// login module, with the next ones accepted in the same burst, is the
	// reordering the sink documents as possible; it is not what this test
	// is about.
	b, _ := startArtemis(t, artemis.Options{Users: map[string]string{"sluice": "sluice-pw"}, StaticUsers: true})
	p := start(t, "SLUICE_SPOOL_DIR="+t.TempDir(), "SLUICE_SINKS=amqp1", "SLUICE_AMQP1_URL="+b.URL("sluice", "sluice-pw"),
		"SLUICE_AMQP1_RETRY_MAX=500ms", "SLUICE_AMQP1_WRITE_TIMEOUT=2s", "SLUICE_AMQP1_DIAL_TIMEOUT=1s")

	wait := loadDuring(t, loadgen.Config{URL: p.url, Mode: "ndjson", Batch: 20, Size: 200, Connections: 4,
		Keys: 40, Topic: "events", Duration: 5 * time.Second, Verify: true})
	time.Sleep(1500 * time.Millisecond)
	b.Kill(t)
	outage := time.Now()
	waitMetric(t, p, `sluice_sink_failing{sink="amqp1"}`, 1)
	time.Sleep(time.Second)
	b.Restart(t)
	down := time.Since(outage)
	rep := wait()
	waitBacklogEmpty(t, p)
	waitMetric(t, p, `sluice_sink_failing{sink="amqp1"}`, 0)
	delivered := readQueue(t, b.Dial(t, artemisAdmin, artemisAdminPw), "events")
	v := loadgen.Verify(rep.AckedIDs, loadgen.FilterRun(delivered, rep.RunID))
	if v.Lost != 0 || v.OutOfOrder != 0 || v.Unexpected != 0 {
		t.Fatalf("after a %v outage: %+v", down, v)
	}
	if n := len(deadLetters(t, p)); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
	t.Logf("broker killed for %v: %d pushed, %d acknowledged, %d delivered (%d unique), %d lost, %d duplicates, %d out of order",
		down.Round(time.Millisecond), rep.Messages, v.Acked, v.Delivered, v.Unique, v.Lost, v.Duplicates, v.OutOfOrder)
}

// TestE2EAMQP1 runs the end-to-end cases that share one broker, which
// does not auto-create addresses.
func TestE2EAMQP1(t *testing.T) {
	b, c := startArtemis(t, artemis.Options{
		Users:        map[string]string{"sluice": "right-pw"},
		NoAutoCreate: true,
		Addresses: `<address name="orders"><anycast><queue name="orders"/></anycast></address>
      <address name="creds"><anycast><queue name="creds"/></anycast></address>`,
	})
	t.Run("BadCredentials", func(t *testing.T) { e2eBadCredentials(t, b, c) })
	t.Run("PerMessageError", func(t *testing.T) { e2ePerMessageError(t, b, c) })
	t.Run("AddressDeleted", func(t *testing.T) { e2eAddressDeleted(t, b, c) })
}

// e2eBadCredentials: with a password the broker refuses, pushes are still
// accepted, the sink is failing (auth), nothing is dead-lettered; when the
// broker's password is rotated to the one sluice has, the backlog drains
// without a restart.
func e2eBadCredentials(t *testing.T, b *artemis.Broker, c *artemis.Client) {
	b.SetPassword(t, "rotating", "old-pw")
	p := start(t, "SLUICE_SPOOL_DIR="+t.TempDir(), "SLUICE_SINKS=mq", "SLUICE_MQ_TYPE=amqp1",
		"SLUICE_MQ_URL="+b.URL("rotating", "new-pw"), "SLUICE_MQ_ADDRESS=creds", "SLUICE_MQ_RETRY_MAX=500ms")
	for i := range 20 {
		if code, _, err := push(p.url, "t", fmt.Appendf(nil, "m%d", i), ""); err != nil || code != 202 {
			t.Fatalf("push %d: %d %v", i, code, err)
		}
	}
	waitMetric(t, p, `sluice_sink_failing{sink="mq"}`, 1)
	waitMetric(t, p, `sluice_sink_auth_failing{sink="mq"}`, 1)
	if r := scrapeMetric(t, p, `sluice_sink_retries_total{sink="mq",reason="auth"}`); r <= 0 {
		t.Fatalf("retries by reason auth: %v", r)
	}
	if n := len(deadLetters(t, p)); n != 0 {
		t.Fatalf("%d messages dead-lettered for a bad password", n)
	}
	if strings.Contains(p.logs(), "new-pw") {
		t.Fatal("the log shows the password")
	}
	b.SetPassword(t, "rotating", "new-pw")
	waitBacklogEmpty(t, p)
	waitMetric(t, p, `sluice_sink_failing{sink="mq"}`, 0)
	waitMetric(t, p, `sluice_sink_auth_failing{sink="mq"}`, 0)
	got := readQueue(t, c, "creds")
	if len(got) != 20 || len(deadLetters(t, p)) != 0 {
		t.Fatalf("after the rotation: %d delivered, %d dead letters", len(got), len(deadLetters(t, p)))
	}
}

// e2ePerMessageError: one message of a batch goes to an address that does
// not exist (the address is the key here); it alone is dead-lettered with
// its reason and the broker's condition, its batch-mates are delivered.
func e2ePerMessageError(t *testing.T, b *artemis.Broker, c *artemis.Client) {
	p := start(t, "SLUICE_SPOOL_DIR="+t.TempDir(), "SLUICE_SINKS=mq", "SLUICE_MQ_TYPE=amqp1",
		"SLUICE_MQ_URL="+b.URL("sluice", "right-pw"), "SLUICE_MQ_ADDRESS={key}", "SLUICE_MQ_UNKNOWN_ADDRESS_GRACE=0s")
	body := `{"messages":[{"topic":"events","key":"orders","value":1},{"topic":"events","key":"nope","value":2},{"topic":"events","key":"orders","value":3}]}`
	resp, err := http.Post(p.url+"/v1/messages", "application/json", strings.NewReader(body))
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("push: %v %v", resp, err)
	}
	resp.Body.Close()
	waitBacklogEmpty(t, p)
	dl := deadLetters(t, p)
	if len(dl) != 1 || dl[0].Reason != amqp1.ReasonUnknownAddress || !strings.Contains(dl[0].Error, "amqp:not-found") || *dl[0].Key != "nope" {
		t.Fatalf("dead letters %+v", dl)
	}
	var values []string
	for _, m := range c.Receive(t, "orders") {
		values = append(values, string(m.GetData()))
	}
	if strings.Join(values, ",") != "1,3" {
		t.Fatalf("orders holds %v", values)
	}
	t.Logf("dead letter: reason %s, error %q", dl[0].Reason, dl[0].Error)
}

// e2eAddressDeleted: the address is deleted under sluice's open link
// (Artemis then rejects each message with its 'failed' condition, "does
// not exist"); within the grace the messages are retried, not
// dead-lettered, and once the address is back they are delivered.
func e2eAddressDeleted(t *testing.T, b *artemis.Broker, c *artemis.Client) {
	p := start(t, "SLUICE_SPOOL_DIR="+t.TempDir(), "SLUICE_SINKS=mq", "SLUICE_MQ_TYPE=amqp1",
		"SLUICE_MQ_URL="+b.URL("sluice", "right-pw"), "SLUICE_MQ_ADDRESS=orders", "SLUICE_MQ_RETRY_MAX=300ms")
	if code, _, _ := push(p.url, "t", []byte("before"), ""); code != 202 {
		t.Fatal(code)
	}
	waitBacklogEmpty(t, p)
	if _, err := c.Manage(t, "broker", "destroyQueue", `["orders", true, true]`); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if code, _, _ := push(p.url, "t", fmt.Appendf(nil, "while gone %d", i), ""); code != 202 {
			t.Fatal(code)
		}
	}
	waitMetric(t, p, `sluice_sink_failing{sink="mq"}`, 1)
	if r := scrapeMetric(t, p, `sluice_sink_retries_total{sink="mq",reason="unknown_address"}`); r < 0 {
		t.Fatalf("no retries for reason unknown_address\n%s", p.logs())
	}
	if _, err := c.Manage(t, "broker", "createQueue", `["{\"name\":\"orders\",\"address\":\"orders\",\"routing-type\":\"ANYCAST\",\"auto-create-address\":true}"]`); err != nil {
		t.Fatal(err)
	}
	waitBacklogEmpty(t, p)
	var values []string
	for _, m := range c.Receive(t, "orders") {
		values = append(values, string(m.GetData()))
	}
	want := []string{}
	for i := range 10 {
		want = append(want, fmt.Sprintf("while gone %d", i))
	}
	if !bytes.Equal([]byte(strings.Join(values, "|")), []byte(strings.Join(want, "|"))) || len(deadLetters(t, p)) != 0 {
		t.Fatalf("after the address came back: %q, %d dead letters", values, len(deadLetters(t, p)))
	}
}
