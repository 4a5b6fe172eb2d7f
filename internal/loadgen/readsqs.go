package loadgen

import (
	"context"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	sqssink "github.com/sluiceio/sluice/sink/sqs"
)

// ReadSQS receives every message in an SQS queue that the SQS sink wrote
// to, decodes it (sqssink.Decode) and deletes it, until two receives in a
// row come back empty. Messages come in the order the server hands them
// out, which for a standard queue is no order: verify such a queue with
// Verify's Lost and Duplicates, not OutOfOrder.
func ReadSQS(ctx context.Context, client *sqs.Client, queueURL string) ([]Delivered, error) {
	var out []Delivered
	for empty := 0; empty < 2; {
		r, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &queueURL, MaxNumberOfMessages: 10,
			MessageAttributeNames: []string{"All"}, VisibilityTimeout: 300})
		if err != nil {
			return out, fmt.Errorf("sqs receive: %w", err)
		}
		if len(r.Messages) == 0 {
			empty++
			continue
		}
		empty = 0
		del := make([]types.DeleteMessageBatchRequestEntry, 0, len(r.Messages))
		for i, m := range r.Messages {
			sm, err := sqssink.Decode(m)
			if err != nil {
				return out, err
			}
			d := Delivered{ID: sm.ID, Topic: sm.Topic, Key: string(sm.Key), N: -1, Partition: -1, Offset: -1}
			if vf, ok := ParseValue(sm.Value); ok {
				d.Run, d.N = vf.Run, vf.N
			}
			out = append(out, d)
			del = append(del, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
		}
		if _, err := client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &queueURL, Entries: del}); err != nil {
			return out, fmt.Errorf("sqs delete: %w", err)
		}
	}
	return out, nil
}
