package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// TestKafkaRealReadBack: messages pushed through every endpoint reach the
// real cluster and are read back by the Java consumer and by kcat with
// their key, value bytes, headers and exactly one sluice-id, each key on
// the partition the Java producer's default partitioner picks for it.
func TestKafkaRealReadBack(t *testing.T) {
	c := realCluster(t)
	kcat := requireKcat(t)
	ctx := context.Background()
	createTopic(t, c, "rb-orders", 6, nil)
	createTopic(t, c, "rb-blobs", 1, nil)
	createTopic(t, c, "rb-ref", 6, nil)
	p := start(t, "SLUICE_SPOOL_DIR="+t.TempDir(), "SLUICE_SINKS=kafka", "SLUICE_KAFKA_BROKERS="+c.Bootstrap(),
		"SLUICE_KAFKA_TOPIC_PREFIX=rb-")

	type want struct{ topic, key, value, header string }
	wants := map[string]want{}
	var keys []string
	for i := 0; i < 200; i++ {
		k := fmt.Sprintf("customer-%d", i)
		keys = append(keys, k)
		req, _ := http.NewRequest("POST", p.url+"/v1/topics/orders", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
		req.Header.Set("Sluice-Key", k)
		req.Header["Sluice-Header-trace"] = []string{"t" + strconv.Itoa(i)}
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 202 {
			t.Fatalf("push %d: %v %v", i, resp, err)
		}
		var v struct{ IDs []string }
		json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		wants[v.IDs[0]] = want{"rb-orders", k, fmt.Sprintf(`{"n":%d}`, i), "t" + strconv.Itoa(i)}
	}
	_, ids, _ := push(p.url, "blobs", []byte("line one\nline two\n"), "application/x-ndjson")
	wants[ids[0]] = want{"rb-blobs", "", "line one", ""}
	wants[ids[1]] = want{"rb-blobs", "", "line two", ""}
	resp, err := http.Post(p.url+"/v1/messages", "application/json", strings.NewReader(
		`{"messages":[{"topic":"blobs","key":"bin","value_b64":"AP8BAg=="},{"topic":"blobs","value":{"a": [1.50]},"id":"chained-1"}]}`))
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("batch: %v %v", resp, err)
	}
	var v struct{ IDs []string }
	json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	wants[v.IDs[0]] = want{"rb-blobs", "bin", "\x00\xff\x01\x02", ""}
	wants[v.IDs[1]] = want{"rb-blobs", "", `{"a": [1.50]}`, ""}
	waitBacklogEmpty(t, p)

	// The Java producer's default partitioner on the same keys.
	ref, err := c.Env().JavaPartitions(ctx, c.Bootstrap(), "rb-ref", keys)
	if err != nil || len(ref) != len(keys) {
		t.Fatalf("java partitions: %d of %d keys: %v", len(ref), len(keys), err)
	}

	// Java consumer.
	seen := map[string]bool{}
	for _, topic := range []string{"rb-orders", "rb-blobs"} {
		recs, err := c.Env().ConsumeJava(ctx, c.Bootstrap(), topic)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			idh := r.HeaderValues(sink.IDHeader)
			if len(idh) != 1 {
				t.Fatalf("%s[%d]@%d: %d sluice-id headers", topic, r.Partition, r.Offset, len(idh))
			}
			id := string(idh[0])
			w, ok := wants[id]
			if !ok || seen[id] || w.topic != topic {
				t.Fatalf("unexpected, duplicate or misplaced record %s in %s", id, topic)
			}
			seen[id] = true
			key := string(r.Key)
			if w.key == "" && r.Key != nil {
				t.Fatalf("%s: key %q, want null", id, r.Key)
			}
			if key != w.key || string(r.Value) != w.value {
				t.Fatalf("%s: key %q value %q, want %+v", id, r.Key, r.Value, w)
			}
			if w.header != "" {
				if tr := r.HeaderValues("trace"); len(tr) != 1 || string(tr[0]) != w.header || len(r.Headers) != 2 {
					t.Fatalf("%s: headers %+v", id, r.Headers)
				}
			}
			if topic == "rb-orders" && r.Partition != ref[w.key] {
				t.Fatalf("key %s on partition %d, the Java producer put it on %d", w.key, r.Partition, ref[w.key])
			}
			if w.key == "customer-7" {
				st := getStatus(t, p, id)
				k := st.Sinks["kafka"]
				if st.Status != "delivered" || k.Partition == nil || *k.Partition != r.Partition || *k.Offset != r.Offset {
					t.Fatalf("status %+v vs Java consumer partition %d offset %d", st, r.Partition, r.Offset)
				}
			}
		}
	}
	if len(seen) != len(wants) {
		t.Fatalf("Java consumer read %d of %d messages", len(seen), len(wants))
	}

	// kcat (librdkafka) reads the same.
	n := 0
	for _, topic := range []string{"rb-orders", "rb-blobs"} {
		for _, r := range kcatRead(t, kcat, c.Node(1).Addr, topic) {
			idh := r.headers[sink.IDHeader]
			if len(idh) != 1 {
				t.Fatalf("kcat: %s[%d]@%d sluice-id %v", topic, r.partition, r.offset, idh)
			}
			w := wants[idh[0]]
			if string(r.key) != w.key || !bytes.Equal(r.value, []byte(w.value)) {
				t.Fatalf("kcat: %s: key %q value %q, want %+v", idh[0], r.key, r.value, w)
			}
			n++
		}
	}
	if n != len(wants) {
		t.Fatalf("kcat read %d of %d", n, len(wants))
	}
}

// TestKafkaRealCodecs: one agent, one sink per compression codec; the
// Java consumer reads every message of every codec back byte for byte.
func TestKafkaRealCodecs(t *testing.T) {
	c := realCluster(t)
	ctx := context.Background()
	codecs := []string{"none", "gzip", "snappy", "lz4", "zstd"}
	env := []string{"SLUICE_SPOOL_DIR=" + t.TempDir(), "SLUICE_SINKS=" + strings.Join(codecs, ",")}
	for _, codec := range codecs {
		createTopic(t, c, "codec-"+codec, 2, nil)
		u := strings.ToUpper(codec)
		env = append(env, "SLUICE_"+u+"_TYPE=kafka", "SLUICE_"+u+"_BROKERS="+c.Bootstrap(),
			"SLUICE_"+u+"_COMPRESSION="+codec, "SLUICE_"+u+"_TOPICS=codec-"+codec)
	}
	p := start(t, env...)
	value := func(codec string, i int) string {
		return fmt.Sprintf(`{"codec":%q,"i":%d,"pad":%q}`, codec, i, strings.Repeat("abc", i%50))
	}
	for _, codec := range codecs {
		var body bytes.Buffer
		for i := 0; i < 100; i++ {
			body.WriteString(value(codec, i) + "\n")
		}
		if code, _, err := push(p.url, "codec-"+codec, body.Bytes(), "application/x-ndjson"); err != nil || code != 202 {
			t.Fatalf("push %s: %d %v", codec, code, err)
		}
	}
	waitBacklogEmpty(t, p)
	for _, codec := range codecs {
		recs, err := c.Env().ConsumeJava(ctx, c.Bootstrap(), "codec-"+codec)
		if err != nil {
			t.Fatalf("%s: %v", codec, err)
		}
		got := map[string]bool{}
		for _, r := range recs {
			got[string(r.Value)] = true
		}
		for i := 0; i < 100; i++ {
			if !got[value(codec, i)] {
				t.Fatalf("%s: message %d not read back by the Java consumer (%d records)", codec, i, len(recs))
			}
		}
		if len(recs) != 100 {
			t.Fatalf("%s: %d records, want 100", codec, len(recs))
		}
	}
}

// TestKafkaRealPerMessageErrors: a topic that does not exist (auto-create
// off) is retried for the grace, then its messages are dead-lettered with
// reason unknown_topic; a message over the topic's max.message.bytes is
// dead-lettered alone (too_large) and its batch-mates are delivered.
func TestKafkaRealPerMessageErrors(t *testing.T) {
	c := realCluster(t)
	ctx := context.Background()
	createTopic(t, c, "pm-small", 1, map[string]string{"max.message.bytes": "2048"})
	p := start(t, "SLUICE_SPOOL_DIR="+t.TempDir(), "SLUICE_SINKS=kafka", "SLUICE_KAFKA_BROKERS="+c.Bootstrap(),
		"SLUICE_KAFKA_UNKNOWN_TOPIC_GRACE=4s", "SLUICE_KAFKA_RETRY_MAX=500ms", "SLUICE_KAFKA_LINGER=200ms")

	// One request, one key: the messages share a partition and a batch.
	var batch strings.Builder
	batch.WriteString(`{"messages":[`)
	for i := 0; i < 21; i++ {
		if i > 0 {
			batch.WriteString(",")
		}
		v := fmt.Sprintf("small-%d", i)
		if i == 10 {
			v = strings.Repeat("L", 4000)
		}
		fmt.Fprintf(&batch, `{"topic":"pm-small","key":"k","value":%q}`, v)
	}
	batch.WriteString(`]}`)
	resp, err := http.Post(p.url+"/v1/messages", "application/json", strings.NewReader(batch.String()))
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("push: %v %v", resp, err)
	}
	var v struct{ IDs []string }
	json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()

	pushedAt := time.Now()
	_, missing, _ := push(p.url, "pm-missing", []byte("nowhere"), "")

	waitFor(t, "oversized message dead-lettered", 60*time.Second, func() bool {
		return getStatus(t, p, v.IDs[10]).Status == "failed"
	})
	st := getStatus(t, p, v.IDs[10]).Sinks["kafka"]
	if st.Reason != "too_large" {
		t.Fatalf("oversized message: %+v", st)
	}
	for i, id := range v.IDs {
		if i == 10 {
			continue
		}
		waitFor(t, "batch-mate delivered", 60*time.Second, func() bool { return getStatus(t, p, id).Status == "delivered" })
	}
	recs, err := c.Env().ConsumeJava(ctx, c.Bootstrap(), "pm-small")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, string(r.Value))
	}
	var wantVals []string
	for i := 0; i < 21; i++ {
		if i != 10 {
			wantVals = append(wantVals, fmt.Sprintf(`"small-%d"`, i)) // a JSON value is stored as sent
		}
	}
	if strings.Join(got, ",") != strings.Join(wantVals, ",") {
		t.Fatalf("pm-small holds %v, want %v in order", got, wantVals)
	}

	// The missing topic: not failed within the grace, failed after it.
	if s := getStatus(t, p, missing[0]); time.Since(pushedAt) < 3*time.Second && s.Status != "pending" {
		t.Fatalf("missing topic within the grace: %+v", s)
	}
	waitFor(t, "missing topic dead-lettered after the grace", 60*time.Second, func() bool {
		return getStatus(t, p, missing[0]).Status == "failed"
	})
	if took := time.Since(pushedAt); took < 4*time.Second {
		t.Fatalf("dead-lettered after %v, before the 4 s grace", took)
	}
	if ms := getStatus(t, p, missing[0]).Sinks["kafka"]; ms.Reason != "unknown_topic" {
		t.Fatalf("missing topic: %+v", ms)
	}
	if ps, err := c.Partitions(ctx, "pm-missing"); err == nil && len(ps) > 0 {
		t.Fatalf("pm-missing was created: %+v", ps)
	}
}
