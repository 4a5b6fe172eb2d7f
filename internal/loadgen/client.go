package loadgen

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// newClient returns the HTTP client of a run: one fasthttp.HostClient with
// MaxConns = connections (each connection has one request in flight) and no
// retries, since a retried push would be a second push.
func newClient(c *Config, t target) *fasthttp.HostClient {
	hc := &fasthttp.HostClient{
		Addr:                      t.addr,
		Name:                      "sluice-bench",
		MaxConns:                  c.Connections,
		MaxConnWaitTimeout:        c.Timeout,
		ReadTimeout:               c.Timeout,
		WriteTimeout:              c.Timeout,
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		MaxResponseBodySize:       64 << 20,
	}
	if t.unix {
		path := t.addr
		hc.Dial = func(string) (net.Conn, error) {
			return net.DialTimeout("unix", path, c.Timeout)
		}
	}
	return hc
}

// probe connects once, so that a run against nothing fails at once with a
// clear error instead of reporting a storm of refused connections.
func probe(t target, timeout time.Duration) error {
	network := "tcp"
	if t.unix {
		network = "unix"
	}
	conn, err := net.DialTimeout(network, t.addr, timeout)
	if err != nil {
		return err
	}
	return conn.Close()
}

// reply is the part of a push reply a run looks at.
type reply struct {
	IDs    []string `json:"ids"`
	Status string   `json:"status"`
	Code   string   `json:"code"`
	Error  string   `json:"error"`
}

// errorKey returns the Report.Errors key of a non-2xx reply: "503
// spool_full", or the status alone when the body has no code.
func errorKey(status int, body []byte) (key, msg string) {
	var r reply
	_ = json.Unmarshal(body, &r)
	if r.Code == "" {
		return fmt.Sprint(status), strings.TrimSpace(string(body))
	}
	return fmt.Sprintf("%d %s", status, r.Code), r.Error
}

// transportKey returns the Report.Errors key of a request that got no reply.
func transportKey(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "transport timeout"
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT):
		return "transport refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "transport closed"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "transport no_free_conns"
	}
	return "transport error"
}
