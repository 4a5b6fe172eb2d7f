package kafka

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluiceio/sluice/sink"
)

// Decision (b): CORRUPT_MESSAGE can be a wire CRC error, which the Java
// client retries: a message that meets it CorruptRetries times is retried
// (transient, reason corrupt) and delivered when the broker takes it; only
// past that is it dead-lettered. Before, the first sighting dead-lettered
// a one-message request.
func TestCorruptMessageIsRetriedBeforeDeadLettering(t *testing.T) {
	c, addr := newCluster(t, kfake.SeedTopics(1, "t"))
	w := newWriter(t, addr, Options{})
	mustWrite(t, w, testMsgs("t", "warm", 1, 1))

	// A transient corruption: CorruptRetries failures, then accepted.
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "t", Err: kerr.CorruptMessage, Count: CorruptRetries})
	msgs := testMsgs("t", "flaky", 1, 0)
	for i := range CorruptRetries {
		err := w.Write(context.Background(), msgs)
		if !retryable(err) || sink.Reason(err) != ReasonCorrupt {
			t.Fatalf("attempt %d: %v (reason %s), want transient corrupt", i+1, err, sink.Reason(err))
		}
	}
	mustWrite(t, w, msgs)
	h.Remove()
	if !msgs[0].Delivered {
		t.Fatal("not marked delivered")
	}

	// A record the broker always refuses: dead-lettered after the retries,
	// alone (its batch-mates are delivered).
	h = c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "t", Err: kerr.CorruptMessage, Count: -1})
	bad := testMsgs("t", "bad", 1, 0)
	for i := range CorruptRetries {
		if err := w.Write(context.Background(), bad); !retryable(err) {
			t.Fatalf("attempt %d: %v, want transient", i+1, err)
		}
	}
	err := w.Write(context.Background(), bad)
	var be *sink.BatchError
	if !errors.As(err, &be) || !sink.IsPermanent(be.Errs[0]) || sink.Reason(be.Errs[0]) != ReasonCorrupt {
		t.Fatalf("after %d retries: %v, want Permanent corrupt", CorruptRetries, err)
	}
	h.Remove()
}

// Decision (c): a partition added after the metadata was cached is not a
// reason to dead-letter: an explicit partition at or above the cached
// count makes the sink ask the cluster once before failing the message.
// Before, it failed at once with invalid_partition.
func TestExplicitPartitionAddedAfterCachingIsDelivered(t *testing.T) {
	_, addr := newCluster(t, kfake.SeedTopics(1, "p"))
	w := newWriter(t, addr, Options{MetadataTTL: time.Hour})
	mustWrite(t, w, testMsgs("p", "warm", 1, 1)) // caches 1 partition

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreatePartitionsRequest()
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = "p", 3
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 5000
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create partitions: %v %+v", err, resp)
	}

	msgs := testMsgs("p", "new", 2, 0)
	msgs[0].Partition, msgs[1].Partition = 2, 3 // 2 exists now, 3 does not
	err = w.Write(context.Background(), msgs)
	var be *sink.BatchError
	if !errors.As(err, &be) || be.Errs[0] != nil || !sink.IsPermanent(be.Errs[1]) || sink.Reason(be.Errs[1]) != ReasonInvalidPartition {
		t.Fatalf("got %v", err)
	}
	if !msgs[0].Delivered || msgs[0].DeliveredPart != 2 {
		t.Fatalf("partition 2: delivered=%v part=%d", msgs[0].Delivered, msgs[0].DeliveredPart)
	}
	recs := consume(t, addr, "p", 2)
	found := false
	for _, r := range recs {
		if r.Partition == 2 && string(r.Value) == string(msgs[0].Value) {
			found = true
		}
	}
	if !found {
		t.Fatalf("no record in partition 2: %d records", len(recs))
	}
}
