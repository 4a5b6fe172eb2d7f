package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sluiceio/sluice/internal/loadgen"
	sqsserver "github.com/sluiceio/sluice/internal/testserver/sqs"
)

// sqsEnv is the agent's environment for an SQS sink named sqs: static
// credentials through the AWS variables (the SDK's chain), and never an
// instance-metadata lookup.
func sqsEnv(spool, endpoint, queueURL, keyID, secret string, extra ...string) []string {
	return append([]string{"SLUICE_SPOOL_DIR=" + spool, "SLUICE_SINKS=sqs",
		"SLUICE_SQS_URL=" + queueURL, "SLUICE_SQS_ENDPOINT=" + endpoint, "SLUICE_SQS_REGION=" + sqsserver.Region,
		"SLUICE_SQS_RETRY_MAX=500ms", "SLUICE_SQS_REQUEST_TIMEOUT=2s",
		"AWS_ACCESS_KEY_ID=" + keyID, "AWS_SECRET_ACCESS_KEY=" + secret, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"}, extra...)
}

func sqsReader(endpoint, keyID, secret string) *sqs.Client {
	return sqs.New(sqs.Options{Region: sqsserver.Region, BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(keyID, secret, ""), Retryer: aws.NopRetryer{}})
}

type sinkState struct {
	Sinks []struct {
		BacklogMessages int  `json:"backlog_messages"`
		Failing         bool `json:"failing"`
	}
}

// TestE2ESQSOutage kills ElasticMQ (SIGKILL) under load and restarts it on
// the same port. ElasticMQ runs with its H2 message store written at every
// commit, so what it acknowledged before the kill is still there after the
// restart, and the queue is declared in its configuration, so it exists
// again at once. Every push is answered 202 throughout; every acknowledged
// message is in the queue at the end: 0 lost.
//
// The queue is a FIFO queue (sluice sends one request at a time, per-group
// order), but order per key is not asserted here: ElasticMQ does not keep
// FIFO order when it restores messages from its store after kill -9 (a
// single group of 2,000 messages sent one request after the other, without
// sluice, came back with 270 out of order). Order per key through the sink
// is checked by sink/sqs TestConformance on a FIFO queue; the count here is
// logged.
func TestE2ESQSOutage(t *testing.T) {
	srv := sqsserver.Start(t, sqsserver.Options{Queues: []string{"events.fifo"}, Persist: true})
	queue := srv.QueueURL("events.fifo")
	p := start(t, sqsEnv(t.TempDir(), srv.Endpoint(), queue, "AKIDSLUICE", "secret")...)

	// Open loop at 1,500 msgs/s: a FIFO queue gets one request at a
	// time, so the backlog of the outage drains in seconds.
	wait := loadDuring(t, loadgen.Config{URL: p.url, Mode: "ndjson", Batch: 20, Size: 200, Connections: 4,
		Keys: 40, Topic: "events", Duration: 4 * time.Second, Rate: 1500, Verify: true})
	time.Sleep(time.Second)
	srv.Kill()
	down := time.Now()
	time.Sleep(1500 * time.Millisecond)
	srv.Restart()
	outage := time.Since(down)
	rep := wait()
	waitBacklogEmpty(t, p)
	delivered, err := loadgen.ReadSQS(context.Background(), sqsReader(srv.Endpoint(), "x", "x"), queue)
	if err != nil {
		t.Fatal(err)
	}
	v := loadgen.Verify(rep.AckedIDs, loadgen.FilterRun(delivered, rep.RunID))
	if v.Lost != 0 {
		t.Fatalf("after a %v outage: %+v", outage, v)
	}
	if dl := deadLetters(t, p); len(dl) != 0 {
		t.Fatalf("%d dead letters after an outage, e.g. %+v", len(dl), dl[0])
	}
	t.Logf("ElasticMQ killed for %v: %d pushed and acknowledged, %d delivered (%d unique), %d lost, %d duplicates, %d out of order",
		outage.Round(time.Millisecond), v.Acked, v.Delivered, v.Unique, v.Lost, v.Duplicates, v.OutOfOrder)
}

// TestE2ESQSPerMessageError: one message of a batch is over the sink's
// request budget (sluice enforces SQS's size limits itself; emulators do
// not). It alone is dead-lettered with reason too_large; its batch-mates,
// pushed in the same request, are delivered.
func TestE2ESQSPerMessageError(t *testing.T) {
	srv := sqsserver.Start(t, sqsserver.Options{Queues: []string{"orders"}})
	queue := srv.QueueURL("orders")
	p := start(t, sqsEnv(t.TempDir(), srv.Endpoint(), queue, "AKIDSLUICE", "secret", "SLUICE_SQS_REQUEST_BYTES=64KiB")...)

	var body bytes.Buffer
	for i := range 9 {
		if i == 4 {
			fmt.Fprintf(&body, "%s\n", strings.Repeat("x", 70<<10))
			continue
		}
		fmt.Fprintf(&body, `{"n":%d}`+"\n", i)
	}
	code, ids, err := push(p.url, "orders", body.Bytes(), "application/x-ndjson")
	if err != nil || code != 202 || len(ids) != 9 {
		t.Fatalf("push: %d %v %v", code, ids, err)
	}
	waitBacklogEmpty(t, p)
	dl := deadLetters(t, p)
	if len(dl) != 1 || dl[0].ID != ids[4] || dl[0].Reason != "too_large" || !strings.Contains(dl[0].Error, "exceeds the request budget") {
		t.Fatalf("dead letters %+v, want %s alone with reason too_large", dl, ids[4])
	}
	got, err := loadgen.ReadSQS(context.Background(), sqsReader(srv.Endpoint(), "x", "x"), queue)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, d := range got {
		seen[d.ID] = true
	}
	for i, id := range ids {
		if i != 4 && !seen[id] {
			t.Errorf("batch-mate %s not delivered", id)
		}
	}
	if seen[ids[4]] || len(seen) != 8 {
		t.Fatalf("queue holds %d distinct messages, want the 8 batch-mates", len(seen))
	}
	var st struct{ Status string }
	getJSON(t, p.url+"/v1/messages/"+ids[4], &st)
	if st.Status != "failed" {
		t.Fatalf("message record %+v", st)
	}
}

// TestE2ESQSBadCredentials runs against moto_server, which verifies request
// signatures. With a wrong secret the sink fails (auth), nothing is
// dead-lettered and the backlog waits; after a restart with the right
// secret (a fixed rotation) it is delivered in full.
func TestE2ESQSBadCredentials(t *testing.T) {
	m := sqsserver.StartMoto(t)
	c := sqsReader(m.Endpoint, m.AccessKeyID, m.SecretAccessKey)
	q, err := c.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String("orders")})
	if err != nil {
		t.Fatal(err)
	}
	queue := aws.ToString(q.QueueUrl)
	spool := t.TempDir()

	p := start(t, sqsEnv(spool, m.Endpoint, queue, m.AccessKeyID, "wrong-secret")...)
	var ids []string
	for i := range 20 {
		code, got, err := push(p.url, "orders", []byte(fmt.Sprintf(`{"n":%d}`, i)), "")
		if err != nil || code != 202 {
			t.Fatalf("push %d: %d %v", i, code, err)
		}
		ids = append(ids, got...)
	}
	deadline := time.Now().Add(30 * time.Second)
	var st sinkState
	for {
		getJSON(t, p.admin+"/v1/stats", &st)
		if st.Sinks[0].Failing || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // several retries
	getJSON(t, p.admin+"/v1/stats", &st)
	if !st.Sinks[0].Failing || st.Sinks[0].BacklogMessages != 20 {
		t.Fatalf("stats %+v, want failing with 20 waiting", st)
	}
	if dl := deadLetters(t, p); len(dl) != 0 {
		t.Fatalf("bad credentials dead-lettered %d messages: %+v", len(dl), dl[0])
	}
	resp, err := http.Get(p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var metricsText bytes.Buffer
	metricsText.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(metricsText.String(), `sluice_sink_auth_failing{sink="sqs"} 1`) {
		t.Errorf("metrics lack sluice_sink_auth_failing 1")
	}
	if !strings.Contains(p.logs(), "credentials or permissions failing") {
		t.Errorf("log lacks the credentials error")
	}
	p.cmd.Process.Kill()
	p.wait(t)

	p = start(t, sqsEnv(spool, m.Endpoint, queue, m.AccessKeyID, m.SecretAccessKey)...)
	waitBacklogEmpty(t, p)
	got, err := loadgen.ReadSQS(context.Background(), c, queue)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, d := range got {
		seen[d.ID] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Fatalf("%s not delivered after the credentials were fixed (%d of 20 arrived)", id, len(seen))
		}
	}
}
