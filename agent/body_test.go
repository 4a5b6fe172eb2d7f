package agent

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawPost sends the headers of a POST and the first part bytes of its
// body, and returns the connection.
func rawPost(t *testing.T, url, path string, hdr []string, body []byte, part int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: x\r\n", path)
	for _, h := range hdr {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body[:part])
	if _, err := c.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	return c
}

// readStatus reads one response's status code, failing after 10 s (the
// response must come without the rest of the body).
func readStatus(t *testing.T, c net.Conn) (int, string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, b.String()
}

// Decision (d): SLUICE_MAX_INFLIGHT_BYTES bounds request body memory
// before it is taken. A body whose Content-Length does not fit the budget
// left is refused from its headers (503 spool_full, nothing read); chunked
// and gzip bodies are reserved as they arrive and expand. Before, fasthttp
// read (and the agent expanded) the whole body first and the check ran
// afterwards on the compressed size: the second request below got no
// answer until its body was sent, and the gzip one was accepted.
func TestInflightBytesReservedBeforeTheBodyIsRead(t *testing.T) {
	mem := &memSink{}
	ta := startAgent(t, t.TempDir(), Options{MaxRequestBytes: 64 << 10, MaxMessageBytes: 64 << 10, MaxInflightBytes: 100 << 10,
		Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}})
	big := bytes.Repeat([]byte{'x'}, 60000)

	// A slow client holds 60000 bytes of the 100 KiB budget (fasthttp
	// reads up to 8 KiB of a body with the headers before the handler).
	hold := rawPost(t, ta.url, "/v1/topics/t", []string{"Content-Length: 60000"}, big, 9000)
	waitFor(t, "reservation", func() bool { return ta.a.inflight.Load() >= 60000 })

	// Content-Length over what is left: refused at once, body never sent.
	c := rawPost(t, ta.url, "/v1/topics/t", []string{"Content-Length: 60000"}, big, 0)
	if st, b := readStatus(t, c); st != 503 || !strings.Contains(b, "spool_full") {
		t.Fatalf("over the in-flight budget: %d %s", st, b)
	}
	// Over the request limit: refused from the headers too.
	c = rawPost(t, ta.url, "/v1/topics/t", []string{"Content-Length: 70000"}, big, 0)
	if st, b := readStatus(t, c); st != 413 || !strings.Contains(b, "too_large") {
		t.Fatalf("over the request limit: %d %s", st, b)
	}
	// Expect: 100-continue over the budget: 417, nothing sent.
	c = rawPost(t, ta.url, "/v1/topics/t", []string{"Content-Length: 60000", "Expect: 100-continue"}, big, 0)
	if st, _ := readStatus(t, c); st != http.StatusExpectationFailed {
		t.Fatalf("100-continue over the budget: %d", st)
	}
	// A chunked body is reserved as it arrives.
	var chunked bytes.Buffer
	for range 2 {
		fmt.Fprintf(&chunked, "%x\r\n%s\r\n", 30000, big[:30000])
	}
	chunked.WriteString("0\r\n\r\n")
	c = rawPost(t, ta.url, "/v1/topics/t", []string{"Transfer-Encoding: chunked"}, chunked.Bytes(), chunked.Len())
	if st, b := readStatus(t, c); st != 503 || !strings.Contains(b, "spool_full") {
		t.Fatalf("chunked over the budget: %d %s", st, b)
	}
	// A gzip body is reserved as it expands: 50000 bytes from ~100.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(bytes.Repeat([]byte{'z'}, 50000))
	zw.Close()
	c = rawPost(t, ta.url, "/v1/topics/t", []string{"Content-Encoding: gzip", fmt.Sprintf("Content-Length: %d", gz.Len())}, gz.Bytes(), gz.Len())
	if st, b := readStatus(t, c); st != 503 || !strings.Contains(b, "spool_full") {
		t.Fatalf("gzip expanding over the budget: %d %s", st, b)
	}

	// The slow client finishes: accepted, and the budget is free again.
	hold.Write(big[9000:])
	if st, b := readStatus(t, hold); st != 202 {
		t.Fatalf("held request: %d %s", st, b)
	}
	waitFor(t, "budget released", func() bool { return ta.a.inflight.Load() == 0 })
	if r := do(t, "POST", ta.url+"/v1/topics/t", "", big, nil); r.status != 202 {
		t.Fatalf("after release: %+v", r)
	}
	c = rawPost(t, ta.url, "/v1/topics/t", []string{"Content-Encoding: gzip", fmt.Sprintf("Content-Length: %d", gz.Len())}, gz.Bytes(), gz.Len())
	if st, b := readStatus(t, c); st != 202 {
		t.Fatalf("gzip within the budget: %d %s", st, b)
	}
	c = rawPost(t, ta.url, "/v1/topics/t", []string{"Transfer-Encoding: chunked"}, chunked.Bytes(), chunked.Len())
	if st, b := readStatus(t, c); st != 202 {
		t.Fatalf("chunked within the budget: %d %s", st, b)
	}
	waitFor(t, "budget released", func() bool { return ta.a.inflight.Load() == 0 })
}
