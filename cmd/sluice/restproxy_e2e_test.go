package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// rpCall is one request to the REST Proxy-compatible API and its reply.
type rpCall struct {
	status int
	ctype  string
	ids    []string
	header http.Header
	body   map[string]any
	raw    []byte
}

func rpDo(t *testing.T, method, url, ctype, body string) rpCall {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if strings.Contains(url, "/topics/") && !strings.Contains(url, "/v3/") {
		req.Header.Set("Accept", "application/vnd.kafka.v2+json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	c := rpCall{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), header: resp.Header}
	c.raw, _ = io.ReadAll(resp.Body)
	dec := json.NewDecoder(bytes.NewReader(c.raw))
	dec.UseNumber()
	if err := dec.Decode(&c.body); err != nil {
		t.Fatalf("%s %s: body %q is not a JSON object: %v", method, url, c.raw, err)
	}
	if h := resp.Header.Get("Sluice-Ids"); h != "" {
		c.ids = strings.Split(h, ",")
	}
	return c
}

func keysOf(m map[string]any) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}

func sameKeys(m map[string]any, want ...string) bool {
	if len(m) != len(want) {
		return false
	}
	for _, w := range want {
		if _, ok := m[w]; !ok {
			return false
		}
	}
	return true
}

func num(v any) int64 {
	n, ok := v.(json.Number)
	if !ok {
		return -999
	}
	i, _ := n.Int64()
	return i
}

const (
	v2JSON   = "application/vnd.kafka.json.v2+json"
	v2Binary = "application/vnd.kafka.binary.v2+json"
	v2Reply  = "application/vnd.kafka.v2+json"
)

// checkV2Offsets checks a v2 produce reply: 200, the v2 media type, the
// ProduceResponse shape, and per record the partition (nil = any) and
// offset -1 (spooled acknowledgement).
func checkV2Offsets(t *testing.T, what string, c rpCall, parts ...*int64) {
	t.Helper()
	if c.status != 200 || c.ctype != v2Reply || !sameKeys(c.body, "offsets", "key_schema_id", "value_schema_id") ||
		c.body["key_schema_id"] != nil || c.body["value_schema_id"] != nil {
		t.Fatalf("%s: %d %s %s", what, c.status, c.ctype, c.raw)
	}
	offs, _ := c.body["offsets"].([]any)
	if len(offs) != len(parts) || len(c.ids) != len(parts) {
		t.Fatalf("%s: %d offsets, %d ids for %d records: %s", what, len(offs), len(c.ids), len(parts), c.raw)
	}
	for i, o := range offs {
		m, _ := o.(map[string]any)
		if !sameKeys(m, "partition", "offset", "error_code", "error") || m["error_code"] != nil || m["error"] != nil ||
			num(m["offset"]) != -1 || (parts[i] != nil && num(m["partition"]) != *parts[i]) {
			t.Fatalf("%s: offsets[%d] = %v", what, i, m)
		}
	}
}

func p64(v int64) *int64 { return &v }

// TestE2ERestProxyKafka drives the REST Proxy-compatible API of the real
// binary with the requests of the REST Proxy documentation, reads what
// reached Kafka back with kcat (key, value bytes, headers, partition) and
// checks every error case's status, media type and error_code.
func TestE2ERestProxyKafka(t *testing.T) {
	kcat := requireKcat(t)
	_, broker := newKfake(t, kfake.SeedTopics(3, "jsontest", "binarytest", "test", "v3test"))
	dir := t.TempDir()
	archive := filepath.Join(dir, "archive")
	p := start(t, "SLUICE_SPOOL_DIR="+filepath.Join(dir, "spool"), "SLUICE_SINKS=kafka,archive",
		"SLUICE_KAFKA_BROKERS="+broker, "SLUICE_KAFKA_TOPICS=jsontest,binarytest,test,v3test",
		"SLUICE_ARCHIVE_TYPE=file", "SLUICE_ARCHIVE_PATH="+archive, "SLUICE_ARCHIVE_TOPICS=binarytest",
		"SLUICE_MAX_MESSAGE_BYTES=1KiB")

	type want struct {
		topic, key, value string
		noKey             bool
		part              int // -1 = any
		headers           map[string]string
	}
	wants := map[string]want{}
	expect := func(c rpCall, ws ...want) {
		for i, w := range ws {
			wants[c.ids[i]] = w
		}
	}

	// v2, JSON embedded format (API reference example).
	c := rpDo(t, "POST", p.url+"/topics/jsontest", v2JSON,
		`{"records":[{"key":"somekey","value":{"foo": "bar"}},{"value":[ "foo", "bar" ],"partition":1},{"value":53.5}]}`)
	checkV2Offsets(t, "v2 json", c, p64(-1), p64(1), p64(-1))
	expect(c, want{topic: "jsontest", key: `"somekey"`, value: `{"foo": "bar"}`, part: -1},
		want{topic: "jsontest", noKey: true, value: `[ "foo", "bar" ]`, part: 1},
		want{topic: "jsontest", noKey: true, value: `53.5`, part: -1})

	// v2, binary embedded format (API reference example).
	c = rpDo(t, "POST", p.url+"/topics/test", v2Binary,
		`{"records":[{"key":"a2V5","value":"Y29uZmx1ZW50"},{"value":"a2Fma2E=","partition":1},{"value":"bG9ncw=="}]}`)
	checkV2Offsets(t, "v2 binary", c, p64(-1), p64(1), p64(-1))
	expect(c, want{topic: "test", key: "key", value: "confluent", part: -1},
		want{topic: "test", noKey: true, value: "kafka", part: 1},
		want{topic: "test", noKey: true, value: "logs", part: -1})

	// v2, produce to a partition; binary bytes that are not text.
	c = rpDo(t, "POST", p.url+"/topics/binarytest/partitions/2", v2Binary,
		`{"records":[{"key":"a2V5","value":"Y29uZmx1ZW50"},{"value":"AP8BAg=="}]}`)
	checkV2Offsets(t, "v2 partition", c, p64(2), p64(2))
	expect(c, want{topic: "binarytest", key: "key", value: "confluent", part: 2},
		want{topic: "binarytest", noKey: true, value: "\x00\xff\x01\x02", part: 2})
	archived := c.ids

	// v3: the cluster, then records (API reference example: headers,
	// partition_id, BINARY key, JSON value, timestamp), BINARY and STRING.
	cl := rpDo(t, "GET", p.url+"/v3/clusters", "", "")
	data, _ := cl.body["data"].([]any)
	if cl.status != 200 || cl.ctype != "application/json" || cl.body["kind"] != "KafkaClusterList" || len(data) != 1 ||
		data[0].(map[string]any)["cluster_id"] != "sluice" {
		t.Fatalf("GET /v3/clusters: %d %s", cl.status, cl.raw)
	}
	v3 := p.url + "/v3/clusters/sluice/topics/v3test/records"
	checkV3 := func(what string, c rpCall, part int64, key, value string) {
		t.Helper()
		wantKeys := []string{"error_code", "cluster_id", "topic_name", "partition_id", "offset", "timestamp", "value"}
		if key != "" {
			wantKeys = append(wantKeys, "key")
		}
		if c.status != 200 || c.ctype != "application/json" || !sameKeys(c.body, wantKeys...) || num(c.body["error_code"]) != 200 ||
			c.body["cluster_id"] != "sluice" || c.body["topic_name"] != "v3test" || num(c.body["partition_id"]) != part ||
			num(c.body["offset"]) != -1 || len(c.ids) != 1 {
			t.Fatalf("%s: %d %s %v %s", what, c.status, c.ctype, keysOf(c.body), c.raw)
		}
		if v, _ := c.body["value"].(map[string]any); v["type"] != value {
			t.Fatalf("%s: value %v", what, v)
		}
		if k, _ := c.body["key"].(map[string]any); key != "" && k["type"] != key {
			t.Fatalf("%s: key %v", what, k)
		}
	}
	c = rpDo(t, "POST", v3, "application/json", `{
  "partition_id": 1,
  "headers": [
    {"name": "Header-1", "value": "SGVhZGVyLTE="},
    {"name": "Header-2", "value": "SGVhZGVyLTI="}
  ],
  "key": {"type": "BINARY", "data": "Zm9vYmFy"},
  "value": {"type": "JSON", "data": {"foo": "bar"}},
  "timestamp": "2021-02-05T19:14:42Z"
}`)
	checkV3("v3 json", c, 1, "BINARY", "JSON")
	expect(c, want{topic: "v3test", key: "foobar", value: `{"foo": "bar"}`, part: 1,
		headers: map[string]string{"Header-1": "Header-1", "Header-2": "Header-2"}})
	c = rpDo(t, "POST", v3, "application/json", `{"key":{"type":"BINARY","data":"a2V5"},"value":{"type":"BINARY","data":"AP8BAg=="}}`)
	checkV3("v3 binary", c, -1, "BINARY", "BINARY")
	expect(c, want{topic: "v3test", key: "key", value: "\x00\xff\x01\x02", part: -1})
	c = rpDo(t, "POST", v3, "application/json", `{"value":{"type":"STRING","data":"Hello, \"world\""}}`)
	checkV3("v3 string", c, -1, "", "STRING")
	expect(c, want{topic: "v3test", noKey: true, value: `Hello, "world"`, part: -1})

	// Every error case: status, media type, error_code; nothing spooled.
	long := strings.Repeat("x", 1100)
	for _, e := range []struct {
		name, method, path, ctype, body string
		status                          int
		code                            int64
	}{
		{"v2 no route", "POST", "/topics/unrouted", v2JSON, `{"records":[{"value":1}]}`, 404, 40401},
		{"v2 invalid topic", "POST", "/topics/bad%20name", v2JSON, `{"records":[{"value":1}]}`, 404, 40401},
		{"v2 avro", "POST", "/topics/jsontest", "application/vnd.kafka.avro.v2+json", `{"value_schema":"{\"type\":\"string\"}","records":[{"value":"x"}]}`, 422, 42206},
		{"v2 jsonschema", "POST", "/topics/jsontest", "application/vnd.kafka.jsonschema.v2+json", `{"value_schema":"{}","records":[{"value":{}}]}`, 422, 42206},
		{"v2 protobuf", "POST", "/topics/jsontest", "application/vnd.kafka.protobuf.v2+json", `{"value_schema":"syntax = \"proto3\";","records":[{"value":{}}]}`, 422, 42206},
		{"v2 media type", "POST", "/topics/jsontest", "application/json", `{"records":[{"value":1}]}`, 415, 415},
		{"v2 malformed", "POST", "/topics/jsontest", v2JSON, `{"records":[`, 400, 400},
		{"v2 empty records", "POST", "/topics/jsontest", v2JSON, `{"records":[]}`, 422, 422},
		{"v2 bad base64", "POST", "/topics/test", v2Binary, `{"records":[{"value":"@@@"}]}`, 422, 422},
		{"v2 null value", "POST", "/topics/jsontest", v2JSON, `{"records":[{"key":"k","value":null}]}`, 422, 422},
		{"v2 too large", "POST", "/topics/jsontest", v2JSON, `{"records":[{"value":"` + long + `"}]}`, 413, 413},
		{"v2 bad partition", "POST", "/topics/jsontest/partitions/one", v2JSON, `{"records":[{"value":1}]}`, 404, 40402},
		{"v3 unknown cluster", "POST", "/v3/clusters/lkc-nope/topics/v3test/records", "application/json", `{"value":{"type":"JSON","data":1}}`, 404, 404},
		{"v3 no route", "POST", "/v3/clusters/sluice/topics/unrouted/records", "application/json", `{"value":{"type":"JSON","data":1}}`, 404, 40401},
		{"v3 avro", "POST", "/v3/clusters/sluice/topics/v3test/records", "application/json", `{"value":{"type":"AVRO","schema":"\"string\"","data":"x"}}`, 422, 42206},
		{"v3 protobuf", "POST", "/v3/clusters/sluice/topics/v3test/records", "application/json", `{"value":{"type":"PROTOBUF","schema":"syntax = \"proto3\";","data":{}}}`, 422, 42206},
		{"v3 bad base64", "POST", "/v3/clusters/sluice/topics/v3test/records", "application/json", `{"value":{"type":"BINARY","data":"@@@"}}`, 422, 42206},
		{"v3 empty body", "POST", "/v3/clusters/sluice/topics/v3test/records", "application/json", ``, 422, 42206},
		{"v3 null value", "POST", "/v3/clusters/sluice/topics/v3test/records", "application/json", `{"key":{"type":"STRING","data":"k"}}`, 422, 42206},
		{"v3 too large", "POST", "/v3/clusters/sluice/topics/v3test/records", "application/json", `{"value":{"type":"STRING","data":"` + long + `"}}`, 413, 413},
		{"v3 media type", "POST", "/v3/clusters/sluice/topics/v3test/records", "text/plain", `{"value":{"type":"JSON","data":1}}`, 415, 415},
		{"v3 streamed", "POST", "/v3/clusters/sluice/topics/v3test/records", "application/json", `{"value":{"type":"JSON","data":1}} {"value":{"type":"JSON","data":2}}`, 400, 400},
	} {
		c := rpDo(t, e.method, p.url+e.path, e.ctype, e.body)
		wantType := "application/json"
		if !strings.HasPrefix(e.path, "/v3/") {
			wantType = v2Reply
		}
		if c.status != e.status || c.ctype != wantType || !sameKeys(c.body, "error_code", "message") || num(c.body["error_code"]) != e.code || len(c.ids) != 0 {
			t.Errorf("%s: %d %s %s, want %d error_code %d", e.name, c.status, c.ctype, c.raw, e.status, e.code)
		}
	}

	waitBacklogEmpty(t, p)
	var got []kcatRec
	for _, topic := range []string{"jsontest", "test", "binarytest", "v3test"} {
		got = append(got, kcatRead(t, kcat, broker, topic)...)
	}
	seen := map[string]bool{}
	for _, r := range got {
		id := r.headers["sluice-id"]
		if len(id) != 1 {
			t.Fatalf("record %s/%d/%d: sluice-id %v", r.topic, r.partition, r.offset, id)
		}
		w, ok := wants[id[0]]
		if !ok || seen[id[0]] {
			t.Fatalf("unexpected or duplicate record %s: %+v", id[0], r)
		}
		seen[id[0]] = true
		if r.topic != w.topic || string(r.value) != w.value || (r.key == nil) != w.noKey || (!w.noKey && string(r.key) != w.key) ||
			(w.part >= 0 && r.partition != w.part) {
			t.Fatalf("%s: topic %s partition %d key %q value %q, want %+v", id[0], r.topic, r.partition, r.key, r.value, w)
		}
		gotHdr := map[string]string{}
		for k, v := range r.headers {
			if k != "sluice-id" {
				gotHdr[k] = strings.Join(v, ",")
			}
		}
		if len(gotHdr) != len(w.headers) || (len(w.headers) > 0 && !reflect.DeepEqual(gotHdr, w.headers)) {
			t.Fatalf("%s: headers %v, want %v", id[0], gotHdr, w.headers)
		}
	}
	if len(seen) != len(wants) {
		t.Fatalf("kcat read %d of %d records", len(seen), len(wants))
	}

	// The file sink prints the explicit partition.
	recs := waitRecords(t, archive, 2)
	for i, r := range recs {
		if r.ID != archived[i] || r.Partition != 2 {
			t.Fatalf("archive record %d: id %s partition %d", i, r.ID, r.Partition)
		}
	}
}

// TestE2ERestProxyDelivered: with SLUICE_RESTPROXY_ACK=delivered the
// replies carry the partition and offset Kafka assigned (as kcat reads
// them), and SLUICE_RESTPROXY_CLUSTER_ID names the cluster.
func TestE2ERestProxyDelivered(t *testing.T) {
	kcat := requireKcat(t)
	_, broker := newKfake(t, kfake.SeedTopics(3, "orders"))
	p := start(t, "SLUICE_SPOOL_DIR="+t.TempDir(), "SLUICE_SINKS=kafka", "SLUICE_KAFKA_BROKERS="+broker,
		"SLUICE_RESTPROXY_ACK=delivered", "SLUICE_RESTPROXY_CLUSTER_ID=lkc-e2e")
	type pos struct{ part, off int64 }
	replied := map[string]pos{}
	c := rpDo(t, "POST", p.url+"/topics/orders", v2JSON,
		`{"records":[{"key":"alice","value":{"n":1}},{"key":"bob","value":{"n":2}},{"value":{"n":3},"partition":2}]}`)
	offs, _ := c.body["offsets"].([]any)
	if c.status != 200 || len(offs) != 3 || len(c.ids) != 3 {
		t.Fatalf("v2: %d %s", c.status, c.raw)
	}
	for i, o := range offs {
		m := o.(map[string]any)
		if m["error_code"] != nil || num(m["offset"]) < 0 || num(m["partition"]) < 0 {
			t.Fatalf("v2 offsets[%d]: %v", i, m)
		}
		replied[c.ids[i]] = pos{num(m["partition"]), num(m["offset"])}
	}
	if num(offs[2].(map[string]any)["partition"]) != 2 {
		t.Fatalf("explicit partition: %v", offs[2])
	}
	if c := rpDo(t, "POST", p.url+"/v3/clusters/sluice/topics/orders/records", "application/json", `{"value":{"type":"JSON","data":1}}`); c.status != 404 {
		t.Fatalf("default cluster id after SLUICE_RESTPROXY_CLUSTER_ID: %d %s", c.status, c.raw)
	}
	c = rpDo(t, "POST", p.url+"/v3/clusters/lkc-e2e/topics/orders/records", "application/json",
		`{"key":{"type":"STRING","data":"carol"},"value":{"type":"JSON","data":{"n":4}}}`)
	if c.status != 200 || num(c.body["error_code"]) != 200 || c.body["cluster_id"] != "lkc-e2e" || num(c.body["offset"]) < 0 || len(c.ids) != 1 {
		t.Fatalf("v3: %d %s", c.status, c.raw)
	}
	replied[c.ids[0]] = pos{num(c.body["partition_id"]), num(c.body["offset"])}

	recs := kcatRead(t, kcat, broker, "orders")
	if len(recs) != len(replied) {
		t.Fatalf("kcat read %d records, want %d", len(recs), len(replied))
	}
	for _, r := range recs {
		id := r.headers["sluice-id"][0]
		if w, ok := replied[id]; !ok || w.part != int64(r.partition) || w.off != r.offset {
			t.Fatalf("%s: replied %+v, kcat partition %d offset %d", id, w, r.partition, r.offset)
		}
	}
}

// TestE2ERestProxyBackPressure: a dead Kafka sink makes the delivered
// acknowledgement time out (50003 per record), its backlog cap answers 503
// 50301, and a draining agent answers 503 50302.
func TestE2ERestProxyBackPressure(t *testing.T) {
	p := start(t, "SLUICE_SPOOL_DIR="+t.TempDir(), "SLUICE_SINKS=dead", "SLUICE_DEAD_TYPE=kafka",
		"SLUICE_DEAD_BROKERS=127.0.0.1:1", "SLUICE_DEAD_MAX_BACKLOG_BYTES=1", "SLUICE_DEAD_RETRY_MAX=200ms",
		"SLUICE_RESTPROXY_ACK=delivered", "SLUICE_ACK_TIMEOUT=300ms", "SLUICE_DRAIN_TIMEOUT=1m")
	c := rpDo(t, "POST", p.url+"/topics/stalled", v2JSON, `{"records":[{"value":1}]}`)
	offs, _ := c.body["offsets"].([]any)
	if c.status != 200 || len(offs) != 1 || len(c.ids) != 1 {
		t.Fatalf("timed-out delivery: %d %s", c.status, c.raw)
	}
	if m := offs[0].(map[string]any); num(m["error_code"]) != 50003 || m["partition"] != nil || m["offset"] != nil {
		t.Fatalf("timed-out delivery: %v", m)
	}
	var st struct{ Status string }
	getJSON(t, p.url+"/v1/messages/"+c.ids[0], &st)
	if st.Status != "pending" {
		t.Fatalf("request record: %+v", st)
	}
	for _, path := range []string{"/topics/stalled", "/v3/clusters/sluice/topics/stalled/records"} {
		ctype, body := v2JSON, `{"records":[{"value":2}]}`
		if strings.HasPrefix(path, "/v3/") {
			ctype, body = "application/json", `{"value":{"type":"JSON","data":2}}`
		}
		c := rpDo(t, "POST", p.url+path, ctype, body)
		if c.status != 503 || num(c.body["error_code"]) != 50301 || c.header.Get("Retry-After") == "" {
			t.Fatalf("%s at the backlog cap: %d %v %s", path, c.status, c.header, c.raw)
		}
	}
	resp, err := p.control("POST", "/v1/control/drain")
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("drain: %v %v", resp, err)
	}
	resp.Body.Close()
	for _, path := range []string{"/topics/stalled", "/v3/clusters/sluice/topics/stalled/records"} {
		ctype, body := v2JSON, `{"records":[{"value":3}]}`
		if strings.HasPrefix(path, "/v3/") {
			ctype, body = "application/json", `{"value":{"type":"JSON","data":3}}`
		}
		c := rpDo(t, "POST", p.url+path, ctype, body)
		if c.status != 503 || num(c.body["error_code"]) != 50302 {
			t.Fatalf("%s while draining: %d %s", path, c.status, c.raw)
		}
	}
}
