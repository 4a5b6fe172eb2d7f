package sqs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"
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

// drainVisibility is how long, in seconds, a message drain received stays
// hidden. A receive whose answer is lost on the way (the SDK reports a 200
// it could not read: "use of closed network connection", as in
// aws/aws-sdk-go-v2#1825 and #2737) leaves its messages in flight that long.
const drainVisibility = 5

// drain receives and deletes every message in the queue, decoded, in the
// order the server hands them out. It does what a consumer must: a receive
// or delete whose answer was lost is tried again, and the queue is not
// called empty until whatever a lost receive carried is visible again.
func drain(t testing.TB, c *sqs.Client, url string) []sink.Message {
	t.Helper()
	ctx := context.Background()
	var (
		out    []sink.Message
		hidden time.Time // until then, messages of a lost receive are in flight
		lost   int
	)
	for empty := 0; empty < 2; {
		r, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10,
			MessageAttributeNames: []string{"All"}, VisibilityTimeout: drainVisibility})
		if err != nil {
			if lost++; !lostAnswer(err) || lost > 3 {
				t.Fatalf("receive: %v", err)
			}
			t.Logf("receive (tried again): %v", err)
			hidden, empty = time.Now().Add(drainVisibility*time.Second+500*time.Millisecond), 0
			continue
		}
		if len(r.Messages) == 0 {
			if time.Now().Before(hidden) {
				time.Sleep(100 * time.Millisecond)
				continue
			}
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
		// A message left undeleted would come back (a duplicate here) and,
		// in a FIFO queue, hold back the rest of its group: drain would end
		// short.
		for try := 1; ; try++ {
			d, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: del})
			if err != nil {
				if !lostAnswer(err) || try == 3 {
					t.Fatalf("delete: %v", err)
				}
				t.Logf("delete (tried again): %v", err)
				continue
			}
			if len(d.Failed) > 0 && try > 1 {
				// The lost answer may have deleted them already.
				t.Logf("delete (tried again): %d of %d entries failed", len(d.Failed), len(del))
			} else if len(d.Failed) > 0 {
				f := d.Failed[0]
				t.Fatalf("delete: %d of %d entries failed, first: %s %s", len(d.Failed), len(del), aws.ToString(f.Code), aws.ToString(f.Message))
			}
			break
		}
	}
	return out
}

// lostAnswer reports whether err is a connection failing under a request,
// so that the server may have acted on it without the answer arriving.
func lostAnswer(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF)
}
