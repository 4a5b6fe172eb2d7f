package sqs

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	sqsserver "github.com/sluiceio/sluice/internal/testserver/sqs"
	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/sinktest"
)

func msgs(prefix string, n, size int) []sink.Message { return sinktest.Generate(prefix, n, size) }

// mustBatchError returns the per-message errors of err.
func mustBatchError(t *testing.T, err error, n int) []error {
	t.Helper()
	var be *sink.BatchError
	if !errors.As(err, &be) || len(be.Errs) != n {
		t.Fatalf("Write = %v, want a BatchError with %d entries", err, n)
	}
	return be.Errs
}

// TestServerErrors drives the error paths through a real ElasticMQ.
func TestServerErrors(t *testing.T) {
	srv := sqsserver.Start(t, sqsserver.Options{})
	c := newClient(srv.Endpoint(), testCreds)
	ctx := context.Background()

	t.Run("FailedEntry", func(t *testing.T) {
		// SQS refuses one entry of a batch (Failed, InvalidMessageContents,
		// sender fault) in a 200 answer: that message alone fails
		// permanently; its batch-mates are delivered and reported so, in
		// every request of the Write.
		url := newQueue(t, c, false)
		w := newWriter(t, Options{URL: url, Endpoint: srv.Endpoint()})
		w.cfg.rawBodies = true // let the body with U+0001 reach the server as it is
		batch := msgs("f-", 25, 100)
		for i := range batch {
			batch[i].Value = []byte("text " + batch[i].ID)
		}
		batch[13].Value = []byte("control \x01 character")
		batch[13].Value[8] = 0x01
		errs := mustBatchError(t, w.Write(ctx, batch), 25)
		for i, e := range errs {
			switch {
			case i == 13 && (!sink.IsPermanent(e) || sink.Reason(e) != ReasonInvalid):
				t.Errorf("refused message: %v (reason %s), want Permanent %s", e, sink.Reason(e), ReasonInvalid)
			case i != 13 && e != nil:
				t.Errorf("message %d: %v, want delivered", i, e)
			}
		}
		if !strings.Contains(errs[13].Error(), "InvalidAttributeValue") && !strings.Contains(errs[13].Error(), "InvalidMessageContents") {
			t.Errorf("error %q does not name the code", errs[13])
		}
		if got := drain(t, c, url); len(got) != 24 {
			t.Fatalf("%d messages in the queue, want 24", len(got))
		}
	})

	t.Run("SizeLimitEnforcedHere", func(t *testing.T) {
		// sluice counts as SQS does: a message of exactly 1 MiB (body +
		// attributes) is accepted by the server; one byte more is refused
		// here, before anything is sent, and the server would refuse it too.
		url := newQueue(t, c, false)
		w := newWriter(t, Options{URL: url, Endpoint: srv.Endpoint(), RequestBytes: MaxRequestBytes})
		m := sink.Message{ID: "big-1", Topic: "t", Partition: sink.NoPartition}
		en, err := w.cfg.encode(&sink.Message{ID: m.ID, Topic: m.Topic, Value: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		overhead := en.size - 1
		m.Value = []byte(strings.Repeat("x", MaxRequestBytes-overhead))
		fits := m
		if err := w.Write(ctx, []sink.Message{fits}); err != nil {
			t.Fatalf("message of exactly %d bytes: %v", MaxRequestBytes, err)
		}
		over := m
		over.ID = "big-2"
		over.Value = append([]byte("y"), m.Value...)
		errs := mustBatchError(t, w.Write(ctx, []sink.Message{over}), 1)
		if !sink.IsPermanent(errs[0]) || sink.Reason(errs[0]) != ReasonTooLarge {
			t.Fatalf("over the limit: %v, want Permanent too_large", errs[0])
		}
		// The server agrees: the same entry sent directly is refused.
		oen, _ := w.cfg.encode(&over)
		oen.e.Id = aws.String("0")
		if _, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &url,
			Entries: []types.SendMessageBatchRequestEntry{oen.e}}); err == nil {
			t.Fatal("ElasticMQ accepted a message over 1 MiB: the test proves nothing")
		}
		got := drain(t, c, url)
		if len(got) != 1 || got[0].ID != "big-1" {
			t.Fatalf("queue holds %d messages, want big-1 only", len(got))
		}
	})

	t.Run("QueueDoesNotExist", func(t *testing.T) {
		// A missing queue is retried (transient, reason no_queue), never
		// dead-lettered: it is the same for every message.
		w := newWriter(t, Options{URL: srv.QueueURL("no-such-queue"), Endpoint: srv.Endpoint()})
		err := w.Write(ctx, msgs("nq-", 25, 50))
		checkTransient(t, err, ReasonNoQueue)
	})

	t.Run("ServerDown", func(t *testing.T) {
		url := newQueue(t, c, false)
		w := newWriter(t, Options{URL: url, Endpoint: srv.Endpoint()})
		srv.Kill()
		checkTransient(t, w.Write(ctx, msgs("down-", 25, 50)), ReasonNetwork)
	})
}

// checkTransient: err fails the whole batch, to be retried, with reason.
func checkTransient(t *testing.T, err error, reason string) {
	t.Helper()
	var be *sink.BatchError
	switch {
	case err == nil:
		t.Fatal("Write returned nil")
	case sink.IsPermanent(err) || errors.As(err, &be):
		t.Fatalf("Write = %v, want a transient whole-batch error", err)
	case sink.Reason(err) != reason:
		t.Fatalf("Write = %v with reason %s, want %s", err, sink.Reason(err), reason)
	}
}
