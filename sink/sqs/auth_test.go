package sqs

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	sqsserver "github.com/sluiceio/sluice/internal/testserver/sqs"
)

// TestCredentials runs against moto_server with request authentication on:
// it verifies each request's signature against the IAM users it holds. A
// wrong secret, an unknown key, a user without permission and a chain that
// yields no credentials all fail the batch transiently with reason auth
// (retried forever, never dead-lettered); the right key delivers.
func TestCredentials(t *testing.T) {
	m := sqsserver.StartMoto(t)
	ctx := context.Background()
	good := credentials.NewStaticCredentialsProvider(m.AccessKeyID, m.SecretAccessKey, "")
	c := newClient(m.Endpoint, good)
	q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("auth")})
	if err != nil {
		t.Fatal(err)
	}
	url := aws.ToString(q.QueueUrl)

	for _, tc := range []struct {
		name  string
		creds aws.CredentialsProvider
	}{
		{"WrongSecret", credentials.NewStaticCredentialsProvider(m.AccessKeyID, "wrong", "")},
		{"UnknownKey", credentials.NewStaticCredentialsProvider("AKIAUNKNOWN000000000", "x", "")},
		{"NoPermission", credentials.NewStaticCredentialsProvider(m.DeniedKeyID, m.DeniedSecret, "")},
		{"NoCredentials", aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{}, errors.New("no credentials in the chain")
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWriter(t, Options{URL: url, Endpoint: m.Endpoint, Credentials: tc.creds})
			err := w.Write(ctx, msgs(tc.name+"-", 3, 20))
			t.Logf("%v", err)
			checkTransient(t, err, ReasonAuth)
			if !w.authFailing {
				t.Fatal("auth_failing state not set")
			}
		})
	}
	t.Run("Good", func(t *testing.T) {
		w := newWriter(t, Options{URL: url, Endpoint: m.Endpoint, Credentials: good})
		if err := w.Write(ctx, msgs("good-", 3, 20)); err != nil {
			t.Fatal(err)
		}
		if got := drain(t, c, url); len(got) != 3 {
			t.Fatalf("%d messages in the queue, want 3 (the refused ones must not be there)", len(got))
		}
	})
}
