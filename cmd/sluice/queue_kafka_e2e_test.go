package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestE2EKafkaListenerProducesToQueue: a queue is "routed like any sink"
// (SLUICE_<NAME>_TOPICS), and the Kafka listener takes "the topics some
// sink's SLUICE_<NAME>_TOPICS globs take". A franz-go producer pointed at
// the listener of an agent whose only sink is a queue must be able to
// produce to the queue's topic, and a worker must pull what it produced.
func TestE2EKafkaListenerProducesToQueue(t *testing.T) {
	kl := freePort(t)
	p := start(t, queueEnv(t.TempDir(), "SLUICE_JOBS_TOPICS=email", "SLUICE_LISTEN_KAFKA="+kl)...)

	cl, err := kgo.NewClient(kgo.SeedBrokers(kl), kgo.DefaultProduceTopic("email"),
		kgo.RecordDeliveryTimeout(10*time.Second), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("user-7"), Value: []byte(`{"to":"a@example.com"}`)}).FirstErr(); err != nil {
		t.Fatalf("produce to a topic routed to queue jobs through the Kafka listener: %v", err)
	}
	r := mustQ(t, p.url, "jobs", "pull", map[string]any{"wait": "5s"})
	if len(r.Messages) != 1 || string(r.Messages[0].Value) != `{"to":"a@example.com"}` {
		t.Fatalf("pulled %+v, want the produced message", r.Messages)
	}
}

// TestE2EQueuePullKeepsBinaryKeys: messages keep their bytes ("bytes kept
// exactly"); Kafka producers commonly use binary keys and header values.
// A topic produced through the Kafka listener and fanned out to a file
// sink and a queue: the file sink keeps the key (key_b64 when it is not
// UTF-8); a worker pulling the queue must be able to get the same bytes.
func TestE2EQueuePullKeepsBinaryKeys(t *testing.T) {
	kl, out := freePort(t), t.TempDir()
	p := start(t, "SLUICE_SPOOL_DIR="+t.TempDir(), "SLUICE_SINKS=jobs,out", "SLUICE_JOBS_TYPE=queue",
		"SLUICE_OUT_TYPE=file", "SLUICE_OUT_PATH="+out, "SLUICE_LISTEN_KAFKA="+kl)
	cl, err := kgo.NewClient(kgo.SeedBrokers(kl), kgo.DefaultProduceTopic("events"), kgo.RecordDeliveryTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	key := []byte{0xff, 0x00, 0x2a, 0x80}
	hval := []byte{0xfe, 0x01}
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Key: key, Value: []byte(`{"n":1}`),
		Headers: []kgo.RecordHeader{{Key: "trace", Value: hval}}}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if recs := waitRecords(t, out, 1); !bytes.Equal(recs[0].Key, key) {
		t.Fatalf("file sink key %x, want %x", recs[0].Key, key)
	}
	resp, err := http.Post(p.url+"/v1/queues/jobs/pull", "application/json", strings.NewReader(`{"wait":"5s"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Messages []struct {
			Key        *string           `json:"key"`
			KeyB64     *string           `json:"key_b64"`
			Headers    map[string]string `json:"headers"`
			HeadersB64 map[string]string `json:"headers_b64"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Messages) != 1 {
		t.Fatalf("pull: %v %+v", err, r)
	}
	m := r.Messages[0]
	var got []byte
	switch {
	case m.KeyB64 != nil:
		got, _ = base64.StdEncoding.DecodeString(*m.KeyB64)
	case m.Key != nil:
		got = []byte(*m.Key)
	}
	if !bytes.Equal(got, key) {
		t.Errorf("pulled key %x, produced %x: the bytes are lost", got, key)
	}
	h := []byte(m.Headers["trace"])
	if v, ok := m.HeadersB64["trace"]; ok {
		h, _ = base64.StdEncoding.DecodeString(v)
	}
	if !bytes.Equal(h, hval) {
		t.Errorf("pulled header value %x, produced %x", h, hval)
	}
}
