package agent

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Malformed REST Proxy input gets a clear 4xx in the REST Proxy error
// shape, never a panic or 5xx, and spools nothing.
func TestRestProxyMalformedNothingSpooled(t *testing.T) {
	mem := &memSink{}
	ta := startAgent(t, t.TempDir(), Options{MaxHeaders: 16, Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink(), Topics: []string{"orders"}}}})
	deep := `{"records":[{"value":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}]}`
	deep3 := `{"value":{"type":"JSON","data":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}}`
	v3 := "/v3/clusters/sluice/topics/orders/records"
	cases := []struct{ path, ct, body string }{
		{"/topics/orders", rpV2JSON, deep},
		{v3, "application/json", deep3},
		{"/topics/orders", rpV2JSON, `{"records":[{"value":1},{"value":null}]}`},
		{"/topics/orders", rpV2Binary, `{"records":[{"value":"AAAA"},{"value":"A==="}]}`},
		{"/topics/orders", rpV2Binary, `{"records":[{"value":"AAAA"},{"value":1}]}`},
		{"/topics/orders", rpV2Binary, `{"records":[{"value":"AAAA","key":"!!"}]}`},
		{"/topics/orders", rpV2JSON, `{"records":[{"value":1,"partition":2147483648}]}`},
		{"/topics/orders", rpV2JSON, `{"records":[{"value":1,"partition":-1}]}`},
		{"/topics/orders", rpV2JSON, `{"records":[{"value":1,"partition":1.5}]}`},
		{"/topics/orders/partitions/1", rpV2JSON, `{"records":[{"value":1,"partition":2}]}`},
		{"/topics/orders/partitions/2147483648", rpV2JSON, `{"records":[{"value":1}]}`},
		{"/topics/orders/partitions/-0", rpV2JSON, `{"records":[{"value":1},{"value":2,"partition":1}]}`},
		{"/topics/orders", rpV2JSON, `{"records":{"value":1}}`},
		{"/topics/orders", rpV2JSON, `{"records":[{"value":1}]`},
		{"/topics/orders", rpV2JSON, `{"records":[{"value":1}]}{"records":[{"value":1}]}`},
		{"/topics/orders", rpV2JSON, `{"records":[{"value":1}]}]`},
		{"/topics/orders", rpV2JSON, "{\"records\":[{\"value\":\"\xff\"}]}"},
		{"/topics/orders", "application/json", `{"records":[{"value":1}]}`},
		{"/topics/orders", "", `{"records":[{"value":1}]}`},
		{"/topics/orders", "application/vnd.kafka.avro.v2+json", `{"records":[{"value":1}]}`},
		{"/topics/orders", rpV2JSON, `null`},
		{"/topics/orders", rpV2JSON, ``},
		{v3, "application/json", `null`},
		{v3, "application/json", `[]`},
		{v3, "application/json", `{"value":{"type":"BINARY","data":"A==="}}`},
		{v3, "application/json", `{"value":{"type":"BINARY","data":1}}`},
		{v3, "application/json", `{"value":{"type":"AVRO","data":1}}`},
		{v3, "application/json", `{"value":{"data":1}}`},
		{v3, "application/json", `{"value":{"type":"JSON","data":1,"schema_id":1}}`},
		{v3, "application/json", `{"value":{"type":"JSON","data":1},"partition_id":-1}`},
		{v3, "application/json", `{"value":{"type":"JSON","data":1},"partition_id":"1"}`},
		{v3, "application/json", `{"value":{"type":"JSON","data":1},"headers":[{"name":"a","value":"!"}]}`},
		{v3, "application/json", `{"value":{"type":"JSON","data":1},"headers":[{"value":"AA=="}]}`},
		{v3, "application/json", `{"value":{"type":"JSON","data":1},"headers":[` + strings.Repeat(`{"name":"a"},`, 16) + `{"name":"e"}]}`},
		{v3, "application/json", `{"value":{"type":"JSON","data":1},"timestamp":"yesterday"}`},
		{v3, "application/json", `{"value":{"type":"JSON","data":1}}{"value":{"type":"JSON","data":2}}`},
		{v3, "application/json", `{"value":{"type":"JSON","data":1}} {"value":{"type":"JSON","data":2}}`},
		{v3, "text/plain", `{"value":{"type":"JSON","data":1}}`},
		{"/v3/clusters/other/topics/orders/records", "application/json", `{"value":{"type":"JSON","data":1}}`},
		{"/v3/clusters/sluice/topics/bad%20topic/records", "application/json", `{"value":{"type":"JSON","data":1}}`},
		{"/v3/clusters/sluice/topics/nowhere/records", "application/json", `{"value":{"type":"JSON","data":1}}`},
	}
	for i, c := range cases {
		r := do(t, "POST", ta.url+c.path, c.ct, []byte(c.body), nil)
		var e struct {
			ErrorCode *int    `json:"error_code"`
			Message   *string `json:"message"`
		}
		body := string(r.raw)
		if len(body) > 200 {
			body = body[:200]
		}
		if r.status < 400 || r.status >= 500 || json.Unmarshal(r.raw, &e) != nil || e.ErrorCode == nil || e.Message == nil {
			t.Errorf("case %d %s %q %.80q: %d %s", i, c.path, c.ct, c.body, r.status, body)
		} else {
			t.Logf("case %d: %d %s", i, r.status, body)
		}
	}
	if n := ta.sp.LastSeq(); n != 0 {
		t.Fatalf("malformed requests spooled %d records", n)
	}
}

// A body cut short (Content-Length promises more than is sent, then
// the client closes) spools nothing; a healthy request afterwards works.
func TestRestProxyCutShortBody(t *testing.T) {
	mem := &memSink{}
	ta := startAgent(t, t.TempDir(), Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink(), Topics: []string{"orders"}}}})
	addr := strings.TrimPrefix(ta.url, "http://")
	for _, c := range []struct{ path, ct, body string }{
		{"/topics/orders", rpV2JSON, `{"records":[{"value":1},{"value":2}]}`},
		{"/v3/clusters/sluice/topics/orders/records", "application/json", `{"value":{"type":"JSON","data":1}}`},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		cut := c.body[:len(c.body)-3]
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s", c.path, c.ct, len(c.body), cut)
		conn.(*net.TCPConn).CloseWrite()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			t.Logf("%s cut short: %d", c.path, resp.StatusCode)
			if resp.StatusCode == 200 {
				t.Errorf("%s: body cut short answered 200", c.path)
			}
		} else {
			t.Logf("%s cut short: %v", c.path, err)
		}
		conn.Close()
	}
	time.Sleep(100 * time.Millisecond)
	if n := ta.sp.LastSeq(); n != 0 {
		t.Fatalf("cut-short bodies spooled %d records", n)
	}
	if r := do(t, "POST", ta.url+"/topics/orders", rpV2JSON, []byte(`{"records":[{"value":1},{"value":2}]}`), nil); r.status != 200 || ta.sp.LastSeq() != 2 {
		t.Fatalf("after: %d %s, spooled %d", r.status, r.raw, ta.sp.LastSeq())
	}
}
