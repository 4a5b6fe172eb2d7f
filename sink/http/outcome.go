package httpsink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluiceio/sluice/sink"
)

// Reasons attached with sink.WithReason to whole-batch errors. They are
// metric label values. An answer with a status code not named here has
// reason "http_<status>" (for example "http_503", "http_400").
const (
	ReasonNetwork  = "network"  // connection refused or reset, DNS, broken response
	ReasonTimeout  = "timeout"  // no complete answer within Options.Timeout
	ReasonCanceled = "canceled" // the caller's context ended
	ReasonClosed   = "closed"   // the Writer was closed
	ReasonTLS      = "tls"      // handshake or certificate failure
	ReasonAuth     = "auth"     // 401, 403, 407
	ReasonRedirect = "redirect" // 3xx: redirects are not followed
)

// Errors returned by Write and Close.
var (
	// ErrClosed: the Writer was closed (before or during the Write).
	ErrClosed = errors.New("httpsink: closed")
)

// StatusError is an answer from the upstream other than 2xx. Write returns
// it wrapped with a reason and, for the permanent statuses, sink.Permanent.
type StatusError struct {
	StatusCode int
	// Status is the status line text, e.g. "503 Service Unavailable".
	Status string
	// Body is the start of the response body (at most BodyExcerptBytes
	// bytes), made printable on one line.
	Body string
	// RetryAfter is the wait the upstream asked for (Retry-After, capped at
	// MaxRetryAfter), 0 when none. Write has already waited it.
	RetryAfter time.Duration
	// Location is the redirect target of a 3xx answer (password redacted).
	Location string
}

func (e *StatusError) Error() string {
	var b strings.Builder
	b.WriteString("httpsink: upstream answered ")
	b.WriteString(e.Status)
	if e.Location != "" {
		b.WriteString(" (redirect to " + e.Location + ", not followed)")
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (Retry-After %s)", e.RetryAfter)
	}
	if e.Body != "" {
		b.WriteString(": ")
		b.WriteString(e.Body)
	}
	return b.String()
}

// class is what a status code means for the batch.
type class struct {
	reason     string
	permanent  bool
	retryAfter bool // honour Retry-After
}

// classifyStatus maps a non-2xx status code to its class. See the table in
// the package documentation.
func classifyStatus(code int) class {
	status := "http_" + strconv.Itoa(code)
	switch {
	case code >= 300 && code < 400:
		return class{reason: ReasonRedirect}
	case code == http.StatusUnauthorized, code == http.StatusForbidden, code == http.StatusProxyAuthRequired:
		// A bad credential rotation must not dead-letter the backlog.
		return class{reason: ReasonAuth}
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
		return class{reason: status, retryAfter: true}
	case code == http.StatusNotFound, code == http.StatusMethodNotAllowed, code == http.StatusUnsupportedMediaType:
		// Wrong URL, method or encoding: the same answer for every batch,
		// never about one message. Permanent would dead-letter the whole
		// backlog one message at a time.
		return class{reason: status}
	case code >= 400 && code < 500:
		// 400, 413 and the rest: the request's content is refused. The
		// forwarder splits the batch until the offending message is alone.
		return class{reason: status, permanent: true}
	case code >= 500 && code < 600:
		return class{reason: status, retryAfter: true}
	default: // 1xx reaching here, or a code outside the standard ranges
		return class{reason: status}
	}
}

// statusError builds the error for a non-2xx answer; excerpt is the start of
// the body. It returns how long to wait before returning the error, and the
// error.
func statusError(resp *http.Response, excerpt []byte, now time.Time) (time.Duration, error) {
	cl := classifyStatus(resp.StatusCode)
	se := &StatusError{StatusCode: resp.StatusCode, Status: resp.Status, Body: printable(excerpt)}
	if se.Status == "" {
		se.Status = strconv.Itoa(resp.StatusCode)
	}
	if cl.reason == ReasonRedirect {
		se.Location = "<none>"
		if loc := resp.Header.Get("Location"); loc != "" {
			se.Location = redactURL(loc)
		}
	}
	if cl.retryAfter {
		se.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	err := sink.WithReason(cl.reason, se)
	if cl.permanent {
		err = sink.Permanent(err)
	}
	return se.RetryAfter, err
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date.
// It returns 0 for a missing or malformed value and caps at MaxRetryAfter.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if v[0] >= '0' && v[0] <= '9' {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			var ne *strconv.NumError
			if !errors.As(err, &ne) || !errors.Is(ne.Err, strconv.ErrRange) {
				return 0
			}
			return MaxRetryAfter // too many digits to parse: very long
		}
		if n >= uint64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else {
		t, err := http.ParseTime(v)
		if err != nil {
			return 0
		}
		d = t.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}

// printable makes a body excerpt safe for a one-line log: invalid UTF-8
// (also a sequence cut by the excerpt limit) is dropped and control
// characters become spaces.
func printable(b []byte) string {
	s := strings.ToValidUTF8(string(b), "")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// transportError classifies an error from Client.Do. ctx is the caller's
// context, closed reports whether Close aborted the request, timeout is
// Options.Timeout.
func transportError(ctx context.Context, closed bool, timeout time.Duration, err error) error {
	if ctx.Err() != nil {
		reason := ReasonCanceled
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			reason = ReasonTimeout
		}
		return sink.WithReason(reason, fmt.Errorf("httpsink: write: %w", ctx.Err()))
	}
	if closed {
		return sink.WithReason(ReasonClosed, fmt.Errorf("%w: request aborted", ErrClosed))
	}
	var (
		netErr  net.Error
		certErr *tls.CertificateVerificationError
		hostErr x509.HostnameError
		authErr x509.UnknownAuthorityError
		recErr  tls.RecordHeaderError
		alert   tls.AlertError
		urlErr  *url.Error
	)
	reason := ReasonNetwork
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		reason = ReasonTimeout
	case errors.As(err, &certErr), errors.As(err, &hostErr), errors.As(err, &authErr),
		errors.As(err, &recErr), errors.As(err, &alert):
		reason = ReasonTLS
	}
	if errors.As(err, &urlErr) {
		err = urlErr.Err // the URL is in the sink's configuration; keep errors short
	}
	if reason == ReasonTimeout {
		return sink.WithReason(reason, fmt.Errorf("httpsink: post batch: no complete answer within %s: %w", timeout, err))
	}
	return sink.WithReason(reason, fmt.Errorf("httpsink: post batch: %w", err))
}
