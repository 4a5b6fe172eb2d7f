package sqs

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	sqsserver "github.com/sluiceio/sluice/internal/testserver/sqs"
	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/sinktest"
)

// The benchmarks send the same 1,000-message batches (about 200 bytes each,
// two topics, ten keys) to one ElasticMQ standard queue in the same run:
//
//	go test -run '^$' -bench SQS -benchtime 30x ./sink/sqs
//
// "sink" is the sink's Write. "plain" is what a
// hand-written producer does with the same SDK: SendMessageBatch of 10
// entries each carrying the body and the same attributes (sluice-id,
// sluice-topic, sluice-key and the message's header), 8
// requests in flight (the sink's default), every answer's Successful
// counted and Failed checked. The ratio of their msgs/s is the sink's cost.

const (
	benchBatch    = 1000
	benchInFlight = DefaultMaxInFlight
)

func benchServer(b *testing.B) (*sqsserver.Server, *sqs.Client, string) {
	srv := sqsserver.Start(b, sqsserver.Options{})
	c := newClient(srv.Endpoint(), testCreds)
	return srv, c, newQueue(b, c, false)
}

func purge(b *testing.B, c *sqs.Client, url string) {
	if _, err := c.PurgeQueue(context.Background(), &sqs.PurgeQueueInput{QueueUrl: &url}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSQS runs the sink and the plain client against one server,
// alternately, three rounds each (sink, plain, sink, plain, ...) after an
// untimed warm-up of both, so that the JVM and a busy machine weigh on both
// alike.
func BenchmarkSQS(b *testing.B) {
	srv, c, url := benchServer(b)
	w := newWriter(b, Options{URL: url, Endpoint: srv.Endpoint()})
	msgs := benchMessages()
	ctx := context.Background()
	run := func(name string, send func() error) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if err := send(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "msgs/s")
			purge(b, c, url)
		})
	}
	// Warm the JVM up with both first (untimed).
	for range 10 {
		if err := w.Write(ctx, msgs); err != nil {
			b.Fatal(err)
		}
		if err := plainSend(ctx, c, url, msgs); err != nil {
			b.Fatal(err)
		}
	}
	purge(b, c, url)
	for range 3 {
		run("sink", func() error { return w.Write(ctx, msgs) })
		run("plain", func() error { return plainSend(ctx, c, url, msgs) })
	}
}

// benchMessages are sinktest.Generate's messages with text values (the
// plain client cannot send its binary ones: the SDK would replace their
// invalid UTF-8 and fail the MD5 check of the answer).
func benchMessages() []sink.Message {
	msgs := sinktest.Generate("b-", benchBatch, 200)
	for i := range msgs {
		if i%3 == 2 {
			msgs[i].Value = msgs[i-1].Value
		}
	}
	return msgs
}

// plainSend is the plain client: 10 entries a request, benchInFlight
// requests at once, results checked.
func plainSend(ctx context.Context, c *sqs.Client, url string, msgs []sink.Message) error {
	next := make(chan []sink.Message)
	errs := make(chan error, benchInFlight)
	var wg sync.WaitGroup
	for range benchInFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for chunk := range next {
				es := make([]types.SendMessageBatchRequestEntry, len(chunk))
				for i, m := range chunk {
					attrs := map[string]types.MessageAttributeValue{
						"sluice-id":    {DataType: aws.String("String"), StringValue: aws.String(m.ID)},
						"sluice-topic": {DataType: aws.String("String"), StringValue: aws.String(m.Topic)},
						"sluice-key":   {DataType: aws.String("String"), StringValue: aws.String(string(m.Key))},
					}
					for _, h := range m.Headers {
						attrs[h.Key] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(string(h.Value))}
					}
					es[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(string(m.Value)),
						MessageAttributes: attrs}
				}
				out, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: es})
				if err == nil && (len(out.Failed) != 0 || len(out.Successful) != len(es)) {
					err = &sink.BatchError{}
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := 0; i < len(msgs); i += MaxBatchEntries {
		next <- msgs[i:min(i+MaxBatchEntries, len(msgs))]
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// BenchmarkEncode is the sink's own work per message before the SDK's:
// checking the value and headers and building the entry.
func BenchmarkEncode(b *testing.B) {
	c, err := Options{URL: "https://sqs.eu-west-1.amazonaws.com/123456789012/q"}.withDefaults()
	if err != nil {
		b.Fatal(err)
	}
	msgs := benchMessages()
	for b.Loop() {
		for i := range msgs {
			if _, err := c.encode(&msgs[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(msgs))/b.Elapsed().Seconds(), "msgs/s")
}
