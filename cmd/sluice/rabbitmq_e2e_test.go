package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluiceio/sluice/internal/loadgen"
	rmqtest "github.com/sluiceio/sluice/internal/testserver/rabbitmq"
	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/rabbitmq"
)

// e2eMaxMessageSize is the node's max_message_size: the per-message test
// pushes one message above it.
const e2eMaxMessageSize = 100000

// TestE2ERabbitMQ drives the real binary against one real RabbitMQ node,
// in subtests that run in this order and share the node (one start, one
// restart: a node takes 5-15 s to start here). Outage, which kills the
// node, comes last.
func TestE2ERabbitMQ(t *testing.T) {
	srv := rmqtest.Start(t, rmqtest.Options{Config: []string{fmt.Sprintf("max_message_size = %d", e2eMaxMessageSize)}})
	t.Run("ReadBack", func(t *testing.T) { testRabbitMQReadBack(t, srv) })
	t.Run("PerMessageError", func(t *testing.T) { testRabbitMQPerMessage(t, srv) })
	t.Run("BadCredentials", func(t *testing.T) { testRabbitMQBadCredentials(t, srv) })
	t.Run("MemoryAlarm", func(t *testing.T) { testRabbitMQMemoryAlarm(t, srv) })
	t.Run("Outage", func(t *testing.T) { testRabbitMQOutage(t, srv) })
}

// rabbitmqEnv configures one rabbitmq sink named mq.
func rabbitmqEnv(t *testing.T, url string, extra ...string) []string {
	return append([]string{"SLUICE_SPOOL_DIR=" + t.TempDir(), "SLUICE_SINKS=mq", "SLUICE_MQ_TYPE=rabbitmq",
		"SLUICE_MQ_URL=" + url, "SLUICE_MQ_RETRY_MAX=500ms", "SLUICE_MQ_RECONNECT_MAX=500ms"}, extra...)
}

// pushN pushes n messages to topic, one per request, and returns their ids;
// every push must be accepted (202).
func pushN(t *testing.T, p *proc, topic string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		code, got, err := push(p.url, topic, fmt.Appendf(nil, `{"i":%d}`, i), "")
		if err != nil || code != http.StatusAccepted || len(got) != 1 {
			t.Fatalf("push %d: %d %v", i, code, err)
		}
		ids = append(ids, got[0])
	}
	return ids
}

// queueIDs reads a queue and returns the sluice ids in it, in order.
func queueIDs(t *testing.T, srv *rmqtest.Server, queue string) []string {
	t.Helper()
	var ids []string
	for _, d := range srv.ReadQueue(t, queue) {
		id, _ := d.Headers[sink.IDHeader].(string)
		ids = append(ids, id)
	}
	return ids
}

// expectIDs fails unless every id of want is in got (duplicates allowed).
func expectIDs(t *testing.T, want, got []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, id := range got {
		seen[id] = true
	}
	for _, id := range want {
		if !seen[id] {
			t.Fatalf("%s lost: %d of %d arrived", id, len(seen), len(want))
		}
	}
}

// testRabbitMQReadBack: what the agent publishes, read by a plain AMQP
// consumer: the queue named like the topic, the body exactly, the key and
// the id in headers and properties, persistent.
func testRabbitMQReadBack(t *testing.T, srv *rmqtest.Server) {
	srv.DeclareQueue(t, "orders", nil)
	p := start(t, rabbitmqEnv(t, srv.URL())...)
	req, _ := http.NewRequest("POST", p.url+"/v1/topics/orders", strings.NewReader(`{"total": 12.50}`))
	req.Header.Set("Sluice-Key", "customer-42")
	req.Header["Sluice-Header-trace"] = []string{"t-1"}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("push: %v %v", resp, err)
	}
	var v struct{ IDs []string }
	json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	waitBacklogEmpty(t, p)
	got := srv.ReadQueue(t, "orders")
	if len(got) != 1 {
		t.Fatalf("%d messages in the queue", len(got))
	}
	d := got[0]
	if string(d.Body) != `{"total": 12.50}` || d.MessageId != v.IDs[0] || d.Headers[sink.IDHeader] != v.IDs[0] ||
		d.Headers[rabbitmq.KeyHeader] != "customer-42" || d.Headers["trace"] != "t-1" || d.DeliveryMode != amqp.Persistent {
		t.Fatalf("delivery: body %q message-id %q headers %v mode %d", d.Body, d.MessageId, d.Headers, d.DeliveryMode)
	}
	var st struct{ Status string }
	getJSON(t, p.url+"/v1/messages/"+v.IDs[0], &st)
	if st.Status != "delivered" {
		t.Fatalf("status %q", st.Status)
	}
}

// testRabbitMQPerMessage: the broker refuses one message of a batch (a body
// above its max_message_size: it closes the channel with 406). That one is
// dead-lettered with reason too_large; its batch-mates are delivered.
func testRabbitMQPerMessage(t *testing.T, srv *rmqtest.Server) {
	srv.DeclareQueue(t, "uploads", nil)
	p := start(t, rabbitmqEnv(t, srv.URL())...)
	big := strings.Repeat("x", e2eMaxMessageSize+1)
	body := fmt.Sprintf(`{"messages":[{"topic":"uploads","value":"a"},{"topic":"uploads","value":"b"},`+
		`{"topic":"uploads","value":%q},{"topic":"uploads","value":"d"},{"topic":"uploads","value":"e"}]}`, big)
	resp, err := http.Post(p.url+"/v1/messages", "application/json", strings.NewReader(body))
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("push: %v %v", resp, err)
	}
	var v struct{ IDs []string }
	json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	waitBacklogEmpty(t, p)

	var st struct {
		Status string
		Sinks  map[string]struct{ Status, Reason, Error string }
	}
	getJSON(t, p.url+"/v1/messages/"+v.IDs[2], &st)
	if mq := st.Sinks["mq"]; st.Status != "failed" || mq.Reason != rabbitmq.ReasonTooLarge || !strings.Contains(mq.Error, "max_message_size") {
		t.Fatalf("the large message: %+v", st)
	}
	if n := dlTotal(t, p); n != 1 {
		t.Fatalf("%d dead letters, want 1", n)
	}
	mates := []string{v.IDs[0], v.IDs[1], v.IDs[3], v.IDs[4]}
	got := queueIDs(t, srv, "uploads")
	expectIDs(t, mates, got)
	for _, id := range got {
		if id == v.IDs[2] {
			t.Fatal("the refused message is in the queue")
		}
	}
}

// testRabbitMQBadCredentials: a wrong password is retried, never
// dead-lettered; the sink shows failing and auth_failing; pushes keep
// being accepted; once the user's password is what the agent has, the
// backlog drains. The password never appears in the agent's logs.
func testRabbitMQBadCredentials(t *testing.T, srv *rmqtest.Server) {
	const password = "Pw-rotated-7f3a9c"
	srv.DeclareQueue(t, "audit", nil)
	srv.AddUser(t, "sluice", "Pw-old-1b2c")
	t.Cleanup(func() { srv.Ctl(t, "delete_user", "sluice") })
	p := start(t, rabbitmqEnv(t, srv.URLFor("sluice", password))...)
	ids := pushN(t, p, "audit", 20)
	waitMetric(t, p, `sluice_sink_failing{sink="mq"}`, 1)
	waitMetric(t, p, `sluice_sink_auth_failing{sink="mq"}`, 1)
	if n := dlTotal(t, p); n != 0 {
		t.Fatalf("%d dead letters for a credential problem", n)
	}
	ids = append(ids, pushN(t, p, "audit", 5)...) // still accepted

	srv.ChangePassword(t, "sluice", password)
	waitBacklogEmpty(t, p)
	waitMetric(t, p, `sluice_sink_failing{sink="mq"}`, 0)
	waitMetric(t, p, `sluice_sink_auth_failing{sink="mq"}`, 0)
	if n := dlTotal(t, p); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
	expectIDs(t, ids, queueIDs(t, srv, "audit"))
	if strings.Contains(p.logs(), password) {
		t.Fatal("the agent logged the password")
	}
}

// testRabbitMQMemoryAlarm: under a broker memory alarm (connection.blocked)
// pushes keep being accepted, the sink shows failing and blocked, nothing
// is dead-lettered; when the alarm clears the backlog drains.
func testRabbitMQMemoryAlarm(t *testing.T, srv *rmqtest.Server) {
	srv.DeclareQueue(t, "clicks", nil)
	p := start(t, rabbitmqEnv(t, srv.URL(), "SLUICE_MQ_WRITE_TIMEOUT=3s")...)
	ids := pushN(t, p, "clicks", 1)
	waitBacklogEmpty(t, p)

	srv.MemoryAlarm(t, true)
	alarm := true
	t.Cleanup(func() {
		if alarm {
			srv.MemoryAlarm(t, false)
		}
	})
	ids = append(ids, pushN(t, p, "clicks", 50)...)
	waitMetric(t, p, `sluice_sink_failing{sink="mq"}`, 1)
	waitMetric(t, p, `sluice_sink_blocked{sink="mq"}`, 1)
	ids = append(ids, pushN(t, p, "clicks", 10)...) // still accepted
	if n := dlTotal(t, p); n != 0 {
		t.Fatalf("%d dead letters during an alarm", n)
	}

	srv.MemoryAlarm(t, false)
	alarm = false
	waitBacklogEmpty(t, p)
	waitMetric(t, p, `sluice_sink_blocked{sink="mq"}`, 0)
	expectIDs(t, ids, queueIDs(t, srv, "clicks"))
}

// testRabbitMQOutage: under load, the node is killed (SIGKILL) and started
// again on the same port and data. Every push is answered 202 throughout;
// every acknowledged message ends up in the queue, in push order per key
// (one queue keeps order; duplicates are counted, allowed).
func testRabbitMQOutage(t *testing.T, srv *rmqtest.Server) {
	srv.DeclareQueue(t, "events", nil)
	srv.SyncTopology(t)
	p := start(t, rabbitmqEnv(t, srv.URL(), "SLUICE_MQ_WRITE_TIMEOUT=2s")...)

	wait := loadDuring(t, loadgen.Config{URL: p.url, Mode: loadgen.ModeNDJSON, Batch: 20, Size: 200,
		Connections: 4, Keys: 40, Topic: "events", Duration: 6 * time.Second, Verify: true})
	time.Sleep(1500 * time.Millisecond)
	srv.Kill(t)
	killed := time.Now()
	waitMetric(t, p, `sluice_sink_failing{sink="mq"}`, 1)
	time.Sleep(time.Until(killed.Add(1500 * time.Millisecond)))
	srv.Restart(t)
	down := time.Since(killed)
	rep := wait()
	waitBacklogEmpty(t, p)
	if n := dlTotal(t, p); n != 0 {
		t.Fatalf("%d dead letters after an outage", n)
	}

	var delivered []loadgen.Delivered
	for _, d := range srv.ReadQueue(t, "events") {
		id, _ := d.Headers[sink.IDHeader].(string)
		key, _ := d.Headers[rabbitmq.KeyHeader].(string)
		dv := loadgen.Delivered{ID: id, Topic: "events", Key: key, N: -1, Partition: -1, Offset: -1}
		if f, ok := loadgen.ParseValue(d.Body); ok {
			dv.Run, dv.N = f.Run, f.N
		}
		delivered = append(delivered, dv)
	}
	v := loadgen.Verify(rep.AckedIDs, loadgen.FilterRun(delivered, rep.RunID))
	if v.Lost != 0 || v.OutOfOrder != 0 {
		t.Fatalf("after a %v outage: %+v", down, v)
	}
	t.Logf("node killed and restarted (down %v): pushed %d, acknowledged %d, delivered %d (%d unique), lost %d, duplicates %d, out of order %d",
		down.Round(time.Millisecond), rep.Messages, v.Acked, v.Delivered, v.Unique, v.Lost, v.Duplicates, v.OutOfOrder)
}
