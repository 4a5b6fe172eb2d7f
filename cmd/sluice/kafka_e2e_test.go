package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/kcattest"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluiceio/sluice/internal/loadgen"
)

func requireKcat(t *testing.T) string { return kcattest.Require(t) }

func newKfake(t *testing.T, opts ...kfake.Opt) (*kfake.Cluster, string) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c, c.ListenAddrs()[0]
}

type kcatRec struct {
	topic     string
	partition int
	offset    int64
	key       []byte
	value     []byte
	headers   map[string][]string
}

// kcatRead reads a topic from the beginning to its end with kcat, headers
// parsed into a map.
func kcatRead(t *testing.T, kcat, broker, topic string) []kcatRec {
	t.Helper()
	var recs []kcatRec
	for _, k := range kcattest.Consume(t, kcat, broker, topic) {
		r := kcatRec{topic: k.Topic, partition: int(k.Partition), offset: k.Offset, key: k.Key, value: k.Value, headers: map[string][]string{}}
		for _, h := range strings.Split(k.Headers, ",") {
			if name, v, ok := strings.Cut(h, "="); ok {
				r.headers[name] = append(r.headers[name], v)
			}
		}
		recs = append(recs, r)
	}
	return recs
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func waitBacklogEmpty(t *testing.T, p *proc) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st struct {
			Sinks []struct {
				BacklogBytes int64 `json:"backlog_bytes"`
			}
		}
		getJSON(t, p.admin+"/v1/stats", &st)
		empty := len(st.Sinks) > 0
		for _, s := range st.Sinks {
			empty = empty && s.BacklogBytes == 0
		}
		if empty {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlog not drained: %+v\n%s", st, p.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestE2EKafkaReadBackWithKcat: messages pushed through every endpoint are
// read back by librdkafka with their topic, key, value bytes, headers and
// one sluice-id, on the partition librdkafka's murmur2 partitioner (the
// Java client's) picks for the key.
func TestE2EKafkaReadBackWithKcat(t *testing.T) {
	kcat := requireKcat(t)
	_, broker := newKfake(t, kfake.SeedTopics(6, "orders", "ref"), kfake.SeedTopics(1, "blobs"))
	dir := t.TempDir()
	p := start(t, "SLUICE_SPOOL_DIR="+dir, "SLUICE_SINKS=kafka", "SLUICE_KAFKA_BROKERS="+broker)

	type want struct{ topic, key, value, header string }
	wants := map[string]want{}
	var keys []string
	for i := 0; i < 200; i++ {
		k := fmt.Sprintf("customer-%d", i)
		keys = append(keys, k)
		req, _ := http.NewRequest("POST", p.url+"/v1/topics/orders", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
		req.Header.Set("Sluice-Key", k)
		req.Header["Sluice-Header-trace"] = []string{"t" + strconv.Itoa(i)} // not canonicalised: the name is kept as sent
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 202 {
			t.Fatalf("push %d: %v %v", i, resp, err)
		}
		var v struct{ IDs []string }
		json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		wants[v.IDs[0]] = want{"orders", k, fmt.Sprintf(`{"n":%d}`, i), "t" + strconv.Itoa(i)}
	}
	_, ids, _ := push(p.url, "blobs", []byte("line one\nline two\n"), "application/x-ndjson")
	wants[ids[0]] = want{"blobs", "", "line one", ""}
	wants[ids[1]] = want{"blobs", "", "line two", ""}
	resp, err := http.Post(p.url+"/v1/messages", "application/json", strings.NewReader(
		`{"messages":[{"topic":"blobs","key":"bin","value_b64":"AP8BAg=="},{"topic":"blobs","value":{"a": [1.50]},"id":"chained-1"}]}`))
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("batch: %v %v", resp, err)
	}
	var v struct{ IDs []string }
	json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	wants[v.IDs[0]] = want{"blobs", "bin", "\x00\xff\x01\x02", ""}
	wants[v.IDs[1]] = want{"blobs", "", `{"a": [1.50]}`, ""}
	waitBacklogEmpty(t, p)

	// librdkafka's own partitions for the same keys.
	var in bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&in, "%s\tx\n", k)
	}
	cmd := exec.Command(kcat, "-P", "-b", broker, "-t", "ref", "-K", "\t", "-X", "partitioner=murmur2_random")
	cmd.Stdin = &in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce: %v %s", err, out)
	}
	refPart := map[string]int{}
	for _, r := range kcatRead(t, kcat, broker, "ref") {
		refPart[string(r.key)] = r.partition
	}

	got := append(kcatRead(t, kcat, broker, "orders"), kcatRead(t, kcat, broker, "blobs")...)
	seen := map[string]bool{}
	for _, r := range got {
		idh := r.headers["sluice-id"]
		if len(idh) != 1 {
			t.Fatalf("record %s/%d/%d has sluice-id headers %v", r.topic, r.partition, r.offset, idh)
		}
		id := idh[0]
		w, ok := wants[id]
		if !ok || seen[id] {
			t.Fatalf("unexpected or duplicate record %s", id)
		}
		seen[id] = true
		if r.topic != w.topic || string(r.key) != w.key || string(r.value) != w.value {
			t.Fatalf("%s: got %s key %q value %q, want %+v", id, r.topic, r.key, r.value, w)
		}
		if w.header != "" && (len(r.headers["trace"]) != 1 || r.headers["trace"][0] != w.header) {
			t.Fatalf("%s: headers %v", id, r.headers)
		}
		if r.topic == "orders" && r.partition != refPart[w.key] {
			t.Fatalf("key %s on partition %d, librdkafka murmur2 says %d", w.key, r.partition, refPart[w.key])
		}
		if r.topic == "orders" && w.key == "customer-7" {
			var st struct {
				Status string
				Sinks  map[string]struct {
					Partition *int
					Offset    *int64
				}
			}
			getJSON(t, p.url+"/v1/messages/"+id, &st)
			k := st.Sinks["kafka"]
			if st.Status != "delivered" || k.Partition == nil || *k.Partition != r.partition || *k.Offset != r.offset {
				t.Fatalf("status %+v vs kcat partition %d offset %d", st, r.partition, r.offset)
			}
		}
	}
	if len(seen) != len(wants) {
		t.Fatalf("kcat read %d of %d messages", len(seen), len(wants))
	}
}

// TestE2EKafkaBrokerRestart: with load running, the broker stops and comes
// back on the same port; every push is answered 202 throughout, and every
// acknowledged message ends up in Kafka once, in order per key (duplicates
// are reported).
func TestE2EKafkaBrokerRestart(t *testing.T) {
	data := t.TempDir()
	c, broker := newKfake(t, kfake.SeedTopics(3, "events"), kfake.DataDir(data), kfake.SyncWrites())
	_, port, _ := net.SplitHostPort(broker)
	p := start(t, "SLUICE_SPOOL_DIR="+t.TempDir(), "SLUICE_SINKS=kafka", "SLUICE_KAFKA_BROKERS="+broker,
		"SLUICE_KAFKA_RETRY_MAX=500ms", "SLUICE_KAFKA_WRITE_TIMEOUT=2s")

	wait := loadDuring(t, loadgen.Config{URL: p.url, Mode: "ndjson", Batch: 20, Size: 200, Connections: 4,
		Keys: 40, Topic: "events", Duration: 4 * time.Second, Verify: true})
	time.Sleep(time.Second)
	c.Close()
	outage := time.Now()
	time.Sleep(1500 * time.Millisecond)
	var err error
	port2, _ := strconv.Atoi(port)
	for i := 0; ; i++ { // the port can take a moment to be free again
		c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port2), kfake.DataDir(data), kfake.SyncWrites())
		if err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restart broker: %v", err)
	}
	t.Cleanup(c.Close)
	down := time.Since(outage)
	rep := wait()
	waitBacklogEmpty(t, p)
	delivered, err := loadgen.ReadKafka(context.Background(), []string{broker}, []string{"events"})
	if err != nil {
		t.Fatal(err)
	}
	v := loadgen.Verify(rep.AckedIDs, loadgen.FilterRun(delivered, rep.RunID))
	if v.Lost != 0 || v.OutOfOrder != 0 {
		t.Fatalf("after a %v outage: %+v", down, v)
	}
	t.Logf("broker down %v: %d acknowledged, %d lost, %d duplicates, %d out of order", down.Round(time.Millisecond), v.Acked, v.Lost, v.Duplicates, v.OutOfOrder)
}

// TestE2EKafkaHungBroker: a "broker" that accepts connections and never
// answers does not stall pushes; messages wait, nothing is lost.
func TestE2EKafkaHungBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, say nothing
		}
	}()
	p := start(t, "SLUICE_SPOOL_DIR="+t.TempDir(), "SLUICE_SINKS=kafka", "SLUICE_KAFKA_BROKERS="+ln.Addr().String(),
		"SLUICE_KAFKA_WRITE_TIMEOUT=300ms", "SLUICE_KAFKA_DIAL_TIMEOUT=300ms")
	for i := 0; i < 50; i++ {
		if code, _, err := push(p.url, "t", []byte("x"), ""); err != nil || code != 202 {
			t.Fatalf("push %d: %d %v", i, code, err)
		}
	}
	var st struct {
		Sinks []struct {
			BacklogMessages int  `json:"backlog_messages"`
			Failing         bool `json:"failing"`
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		getJSON(t, p.admin+"/v1/stats", &st)
		if st.Sinks[0].Failing || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !st.Sinks[0].Failing || st.Sinks[0].BacklogMessages != 50 {
		t.Fatalf("stats %+v", st)
	}
}
