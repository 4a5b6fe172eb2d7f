package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluiceio/sluice/internal/syncbuf"
	"github.com/sluiceio/sluice/sink"
)

// Broker error codes injected into real produce responses over TCP.
func TestProduceErrorClasses(t *testing.T) {
	c, addr := newCluster(t, kfake.SeedTopics(1, "t"))
	w := newWriter(t, addr, Options{})
	mustWrite(t, w, testMsgs("t", "warm", 1, 1))

	for _, tc := range []struct {
		code   *kerr.Error
		reason string
		perm   bool
	}{
		{kerr.NotLeaderForPartition, ReasonLeader, false},
		{kerr.LeaderNotAvailable, ReasonLeader, false},
		{kerr.NotEnoughReplicas, ReasonReplicas, false},
		{kerr.NotEnoughReplicasAfterAppend, ReasonReplicas, false},
		{kerr.RequestTimedOut, ReasonTimeout, false},
		{kerr.TopicAuthorizationFailed, ReasonAuth, false},
		{kerr.ClusterAuthorizationFailed, ReasonAuth, false},
		{kerr.ThrottlingQuotaExceeded, ReasonThrottled, false},
		{kerr.KafkaStorageError, ReasonBroker, false},
		{kerr.UnknownServerError, ReasonBroker, false},
		{kerr.UnsupportedCompressionType, ReasonUnsupported, false},
		{kerr.MessageTooLarge, ReasonTooLarge, true},
		{kerr.RecordListTooLarge, ReasonTooLarge, true},
		{kerr.InvalidRecord, ReasonInvalidRecord, true},
		// CORRUPT_MESSAGE is retried first: recheck_test.go.
		{kerr.InvalidTimestamp, ReasonInvalidTimestamp, true},
	} {
		t.Run(tc.code.Message, func(t *testing.T) {
			for _, n := range []int{1, 3} {
				h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "t", Err: tc.code, Count: -1})
				msgs := testMsgs("t", fmt.Sprintf("%s-%d", tc.code.Message, n), n, 1)
				err := w.Write(context.Background(), msgs)
				h.Remove()
				if err == nil {
					t.Fatalf("%d messages: no error", n)
				}
				var be *sink.BatchError
				switch {
				case !tc.perm:
					if !isTransient(err) {
						t.Errorf("%d messages: %v, want transient", n, err)
					}
				case n == 1:
					// Alone in its request: definitely about this message.
					if !errors.As(err, &be) || len(be.Errs) != 1 || !sink.IsPermanent(be.Errs[0]) {
						t.Errorf("1 message: %v, want BatchError with a Permanent entry", err)
					}
				default:
					// Rejected together: the forwarder must split.
					if !sink.IsPermanent(err) || errors.As(err, &be) {
						t.Errorf("%d messages: %v, want whole-batch Permanent", n, err)
					}
				}
				if got := sink.Reason(err); got != tc.reason && !(be != nil && sink.Reason(be.Errs[0]) == tc.reason) {
					t.Errorf("%d messages: reason %s, want %s", n, got, tc.reason)
				}
				for _, m := range msgs {
					if m.Delivered {
						t.Errorf("failed message marked delivered")
					}
				}
			}
			// The sink recovers once the broker does.
			mustWrite(t, w, testMsgs("t", "after-"+tc.code.Message, 2, 1))
		})
	}
}

// deliver is a minimal forwarder: it retries transient errors a bounded
// number of times and splits on Permanent, as the agent's forwarder does.
// It returns the indexes (into msgs) that ended up dead-lettered.
func deliver(t *testing.T, w *Writer, msgs []sink.Message, base int) (dead []int) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		if attempt == 50 {
			t.Fatalf("messages %d..%d never delivered", base, base+len(msgs)-1)
		}
		err := w.Write(context.Background(), msgs)
		var be *sink.BatchError
		switch {
		case err == nil:
			return dead
		case errors.As(err, &be):
			var retry []sink.Message
			var retryIdx []int
			for i, e := range be.Errs {
				switch {
				case e == nil:
				case sink.IsPermanent(e):
					dead = append(dead, base+i)
				default:
					retry, retryIdx = append(retry, msgs[i]), append(retryIdx, base+i)
				}
			}
			for j, m := range retry {
				dead = append(dead, deliver(t, w, []sink.Message{m}, retryIdx[j])...)
			}
			return dead
		case sink.IsPermanent(err):
			if len(msgs) == 1 {
				return append(dead, base)
			}
			h := len(msgs) / 2
			dead = append(dead, deliver(t, w, msgs[:h], base)...)
			return append(dead, deliver(t, w, msgs[h:], base+h)...)
		default:
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// One message too large for the topic (broker max.message.bytes) among
// good ones: kafka-go fails the whole partition batch, the sink answers
// Permanent, and splitting isolates the one message.
func TestOversizedMessageIsolated(t *testing.T) {
	c, addr := newCluster(t)
	if err := c.CreateTopic("small", 1, map[string]string{"max.message.bytes": "2048"}); err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, addr, Options{}) // sink limit 1 MiB: the broker decides

	msgs := testMsgs("small", "big", 12, 1)
	const bad = 7
	msgs[bad].Value = make([]byte, 3000)
	err := w.Write(context.Background(), msgs)
	if !sink.IsPermanent(err) || sink.Reason(err) != ReasonTooLarge {
		t.Fatalf("first write: %v (reason %s), want Permanent too_large", err, sink.Reason(err))
	}
	dead := deliver(t, w, msgs, 0)
	if len(dead) != 1 || dead[0] != bad {
		t.Fatalf("dead-lettered %v, want [%d]", dead, bad)
	}
	recs := byID(t, consume(t, addr, "small", len(msgs)-1))
	for i, m := range msgs {
		if _, ok := recs[m.ID]; ok == (i == bad) {
			t.Errorf("message %d: delivered %v", i, ok)
		}
	}
}

// With MaxMessageBytes matching the topic, the sink itself rejects the one
// oversized message before sending and keeps every request under the
// limit: no split needed.
func TestMaxMessageBytesPrecheck(t *testing.T) {
	c, addr := newCluster(t)
	if err := c.CreateTopic("small", 1, map[string]string{"max.message.bytes": "2048"}); err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, addr, Options{MaxMessageBytes: 2048})
	msgs := testMsgs("small", "pre", 40, 1) // ~40 × 60 bytes: more than one request
	const bad = 21
	msgs[bad].Value = make([]byte, 2100)
	err := w.Write(context.Background(), msgs)
	var be *sink.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("want BatchError, got %v", err)
	}
	for i, e := range be.Errs {
		switch {
		case i == bad && (!sink.IsPermanent(e) || sink.Reason(e) != ReasonTooLarge):
			t.Errorf("message %d: %v, want Permanent too_large", i, e)
		case i != bad && e != nil:
			t.Errorf("message %d: %v", i, e)
		}
	}
	consume(t, addr, "small", len(msgs)-1)
}

func TestBadTopicBesideGood(t *testing.T) {
	_, addr := newCluster(t, kfake.SeedTopics(2, "good"))
	w := newWriter(t, addr, Options{})

	err := w.Write(context.Background(), testMsgs("missing", "m", 3, 1))
	if !isTransient(err) || sink.Reason(err) != ReasonUnknownTopic {
		t.Fatalf("missing topic: %v (reason %s), want transient unknown_topic", err, sink.Reason(err))
	}
	mustWrite(t, w, testMsgs("good", "g1", 3, 1))

	err = w.Write(context.Background(), testMsgs("bad topic!", "b", 2, 1))
	var be *sink.BatchError
	if !errors.As(err, &be) || !sink.IsPermanent(be.Errs[0]) || sink.Reason(be.Errs[0]) != ReasonInvalidTopic {
		t.Fatalf("invalid topic: %v, want per-message Permanent invalid_topic", err)
	}
	mustWrite(t, w, testMsgs("good", "g2", 3, 1))

	// Mixed in one Write: the good topic's messages are delivered.
	mixed := append(testMsgs("good", "g3", 2, 1), testMsgs("missing", "m2", 2, 1)...)
	err = w.Write(context.Background(), mixed)
	if !errors.As(err, &be) {
		t.Fatalf("mixed: %v, want BatchError", err)
	}
	for i, e := range be.Errs {
		if (i < 2) != (e == nil) || (e != nil && sink.IsPermanent(e)) {
			t.Errorf("mixed message %d: %v", i, e)
		}
	}
	if !mixed[0].Delivered || mixed[2].Delivered {
		t.Errorf("delivery reports: %v %v", mixed[0].Delivered, mixed[2].Delivered)
	}
	consume(t, addr, "good", 8)
}

func TestExplicitPartitionOutOfRange(t *testing.T) {
	_, addr := newCluster(t, kfake.SeedTopics(3, "p"))
	w := newWriter(t, addr, Options{})
	msgs := testMsgs("p", "x", 3, 1)
	msgs[1].Partition = 3
	err := w.Write(context.Background(), msgs)
	var be *sink.BatchError
	if !errors.As(err, &be) || be.Errs[0] != nil || be.Errs[2] != nil ||
		!sink.IsPermanent(be.Errs[1]) || sink.Reason(be.Errs[1]) != ReasonInvalidPartition {
		t.Fatalf("got %v", err)
	}
}

func TestUnknownTopicGrace(t *testing.T) {
	c, addr := newCluster(t, kfake.SeedTopics(1, "other"))
	clock := newFakeClock()
	set := metrics.NewSet()
	logs := &syncbuf.Buffer{}
	w := newWriter(t, addr, Options{UnknownTopicGrace: time.Minute, Now: clock.Now, Metrics: set, Logger: debugLogger(logs)})

	write := func() error { return w.Write(context.Background(), testMsgs("late", "l", 2, 1)) }
	if err := write(); !isTransient(err) || sink.Reason(err) != ReasonUnknownTopic {
		t.Fatalf("within grace: %v", err)
	}
	clock.Advance(59 * time.Second)
	if err := write(); !isTransient(err) {
		t.Fatalf("still within grace: %v", err)
	}
	clock.Advance(2 * time.Second)
	err := write()
	var be *sink.BatchError
	if !errors.As(err, &be) || !sink.IsPermanent(be.Errs[0]) || sink.Reason(be.Errs[0]) != ReasonUnknownTopic {
		t.Fatalf("after grace: %v, want per-message Permanent unknown_topic", err)
	}
	if !strings.Contains(logs.String(), "topic=late") {
		t.Errorf("no log about the topic turning permanent:\n%s", logs)
	}
	if v := metricValue(set, `sluice_sink_failed_messages_total{sink="kafka",reason="unknown_topic"}`); v != "6" {
		t.Errorf("failed messages unknown_topic = %q", v)
	}

	// The topic appears: writes succeed again and the grace is reset.
	if err := c.CreateTopic("late", 1, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		clock.Advance(w.cfg.MetadataTTL) // let the confirmation expire
		err := write()
		if err == nil {
			break
		}
		if i == 100 {
			t.Fatalf("topic never became writable: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	deleteTopic(t, addr, "late")
	for i := 0; ; i++ {
		err := write()
		if err != nil {
			if !isTransient(err) || sink.Reason(err) != ReasonUnknownTopic {
				t.Fatalf("after delete: %v, want transient unknown_topic (grace restarted)", err)
			}
			break
		}
		if i == 100 {
			t.Fatal("deleted topic still writable")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A topic the principal may not describe is missing from the all-topics
// metadata the sink caches: it must not be dead-lettered as unknown.
func TestTopicHiddenByACLIsAuthNotUnknown(t *testing.T) {
	allow := func(op kmsg.ACLOperation, topic string) kfake.ACL {
		return kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: topic, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true}
	}
	_, addr := newCluster(t,
		kfake.SeedTopics(1, "open", "secret"),
		kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("PLAIN", "admin", "admin-pw"),
		kfake.User("PLAIN", "app", "app-pw",
			allow(kmsg.ACLOperationDescribe, "open"), allow(kmsg.ACLOperationWrite, "open"),
			kfake.ACL{Resource: kmsg.ACLResourceTypeCluster, Name: "kafka-cluster", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationDescribe, Allow: true},
		),
	)
	clock := newFakeClock()
	set := metrics.NewSet()
	w := newWriter(t, addr, Options{
		SASL:              SASL{Mechanism: "plain", Username: "app", Password: "app-pw"},
		UnknownTopicGrace: time.Second, Now: clock.Now, Metrics: set,
	})
	mustWrite(t, w, testMsgs("open", "o", 2, 1))
	if err := w.Write(context.Background(), testMsgs("secret", "s", 2, 1)); !isTransient(err) {
		t.Fatalf("within grace: %v", err)
	}
	clock.Advance(time.Minute)
	err := w.Write(context.Background(), testMsgs("secret", "s", 2, 1))
	if !isTransient(err) || sink.Reason(err) != ReasonAuth {
		t.Fatalf("after grace: %v (reason %s), want transient auth", err, sink.Reason(err))
	}
	if v := metricValue(set, `sluice_sink_auth_failing{sink="kafka"}`); v != "1" {
		t.Errorf("auth_failing = %q", v)
	}
	mustWrite(t, w, testMsgs("open", "o2", 2, 1))
	if v := metricValue(set, `sluice_sink_auth_failing{sink="kafka"}`); v != "0" {
		t.Errorf("auth_failing after success = %q", v)
	}
}

func deleteTopic(t *testing.T, addr, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDeleteTopicsRequest()
	rt := kmsg.NewDeleteTopicsRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	req.TopicNames = []string{topic}
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Topics {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			t.Fatalf("delete %s: %v", topic, err)
		}
	}
}
