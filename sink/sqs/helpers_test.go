package sqs

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	sqsserver "github.com/sluiceio/sluice/internal/testserver/sqs"
	"github.com/sluiceio/sluice/sink"
)

// testCreds are what the tests sign with; ElasticMQ does not check them.
var testCreds = credentials.NewStaticCredentialsProvider("AKIDSLUICETEST", "secret", "")

func init() {
	// The SDK must never look for an instance role: tests reach loopback only.
	_ = setenvDefault("AWS_EC2_METADATA_DISABLED", "true")
}

func newClient(endpoint string, creds aws.CredentialsProvider) *sqs.Client {
	return sqs.New(sqs.Options{Region: sqsserver.Region, BaseEndpoint: aws.String(endpoint), Credentials: creds,
		Retryer: aws.NopRetryer{}})
}

var queueSeq atomic.Int64

// newQueue creates a fresh queue (FIFO when fifo) and returns its URL.
func newQueue(t testing.TB, c *sqs.Client, fifo bool) string {
	t.Helper()
	name := fmt.Sprintf("q%d-%d", time.Now().UnixNano()%1e9, queueSeq.Add(1))
	in := &sqs.CreateQueueInput{QueueName: aws.String(name)}
	if fifo {
		in.QueueName = aws.String(name + ".fifo")
		in.Attributes = map[string]string{"FifoQueue": "true"}
	}
	out, err := c.CreateQueue(context.Background(), in)
	if err != nil {
		t.Fatalf("create queue: %v", err)
	}
	return aws.ToString(out.QueueUrl)
}

// newWriter builds a Writer against endpoint; closed when the test ends.
func newWriter(t testing.TB, o Options) *Writer {
	t.Helper()
	if o.Credentials == nil {
		o.Credentials = testCreds
	}
	if o.Region == "" {
		o.Region = sqsserver.Region
	}
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return w
}

// drain receives and deletes every message in the queue, decoded, in the
// order the server hands them out.
func drain(t testing.TB, c *sqs.Client, url string) []sink.Message {
	t.Helper()
	ctx := context.Background()
	var out []sink.Message
	for empty := 0; empty < 2; {
		r, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10,
			MessageAttributeNames: []string{"All"}, VisibilityTimeout: 60})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if len(r.Messages) == 0 {
			empty++
			continue
		}
		empty = 0
		var del []types.DeleteMessageBatchRequestEntry
		for i, m := range r.Messages {
			dm, err := Decode(m)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			out = append(out, dm)
			del = append(del, types.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: m.ReceiptHandle})
		}
		// A message left undeleted would stay in flight and, in a FIFO
		// queue, hold back the rest of its group: drain would end short.
		d, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: del})
		if err != nil {
			t.Fatalf("delete: %v", err)
		}
		if len(d.Failed) > 0 {
			f := d.Failed[0]
			t.Fatalf("delete: %d of %d entries failed, first: %s %s", len(d.Failed), len(del), aws.ToString(f.Code), aws.ToString(f.Message))
		}
	}
	return out
}
