package httpsink

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Defaults applied to zero-valued Options fields.
const (
	DefaultName    = "http"
	DefaultTimeout = 10 * time.Second
	// MaxRetryAfter caps how long one Write waits for a Retry-After.
	MaxRetryAfter = 60 * time.Second
	// BodyExcerptBytes is the most response body bytes an error carries.
	BodyExcerptBytes = 512
)

// Options configures a Writer. The zero value of every field except URL
// means the documented default.
type Options struct {
	// Name is the sink name, logged as attribute sink="<name>". Default
	// "http".
	Name string
	// URL is the endpoint batches are POSTed to, http or https, for example
	// "https://collector.example.com/v1/messages". Required. Userinfo in it
	// is used for basic authentication by net/http and redacted in logs.
	URL string
	// Token, when set, is sent as "Authorization: Bearer <token>". It is
	// never logged nor part of an error.
	Token string
	// Headers are extra request headers. Host sets the request's Host;
	// Content-Length, Content-Encoding, Transfer-Encoding and Connection are
	// the sink's own and rejected; Authorization is rejected together with
	// Token. Values are never logged.
	Headers map[string]string
	// Gzip compresses request bodies (Content-Encoding: gzip, level
	// gzip.BestSpeed). Enable it only for a receiver known to decode gzip
	// request bodies: one that answers 415 keeps the sink retrying, but one
	// that tries to parse the compressed bytes answers 400, which the sink
	// must take as refused content (Permanent), and every message would be
	// dead-lettered.
	Gzip bool
	// Timeout bounds one request: connecting, sending the batch and reading
	// the answer. A Retry-After wait comes on top (at most MaxRetryAfter).
	// Default 10s.
	Timeout time.Duration
	// Client sends the requests. nil = a client of the sink's own with
	// keep-alives and proxies from the environment. A given Client is used
	// through a shallow copy whose CheckRedirect returns
	// http.ErrUseLastResponse: redirects are never followed. Close leaves a
	// given Client's connections alone.
	Client *http.Client
	// Logger receives hints about misconfiguration (an upstream answering
	// with redirects). Failed writes are reported through Write's error,
	// not logged. nil = no logs.
	Logger *slog.Logger
	// Now is the clock for Retry-After given as an HTTP date. nil =
	// time.Now.
	Now func() time.Time
}

// String describes o without secrets: the token and header values are
// redacted, and so is a password in the URL.
func (o Options) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "name=%s url=%s token=%s", o.Name, redactURL(o.URL), redactSet(o.Token))
	names := make([]string, 0, len(o.Headers))
	for k := range o.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&b, " header[%s]=%s", k, redactSet(o.Headers[k]))
	}
	fmt.Fprintf(&b, " gzip=%t timeout=%s", o.Gzip, o.Timeout)
	return b.String()
}

// GoString is String, so %#v does not print secrets either.
func (o Options) GoString() string { return "httpsink.Options{" + o.String() + "}" }

// LogValue implements slog.LogValuer without secrets.
func (o Options) LogValue() slog.Value { return slog.StringValue(o.String()) }

func redactSet(s string) string {
	if s == "" {
		return "<empty>"
	}
	return "<redacted>"
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<unparsable>"
	}
	return u.Redacted()
}

// config is Options with defaults applied and the request headers built.
type config struct {
	Options
	url       *url.URL
	urlString string
	host      string      // Host header override, "" = from the URL
	header    http.Header // static request headers
	client    *http.Client
	own       bool // client built here: Close closes its idle connections
}

// reservedHeaders are set by the sink itself.
var reservedHeaders = map[string]bool{
	"Content-Length":    true,
	"Content-Encoding":  true,
	"Transfer-Encoding": true,
	"Connection":        true,
}

func (o Options) config() (config, error) {
	c := config{Options: o}
	if c.Name == "" {
		c.Name = DefaultName
	}
	switch {
	case c.Timeout == 0:
		c.Timeout = DefaultTimeout
	case c.Timeout < 0:
		return c, fmt.Errorf("httpsink: negative timeout %s", c.Timeout)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = c.Logger.With("sink", c.Name)
	if c.URL == "" {
		return c, errors.New("httpsink: URL is required")
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return c, fmt.Errorf("httpsink: URL %q does not parse", redactURL(c.URL))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return c, fmt.Errorf("httpsink: URL %s: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return c, fmt.Errorf("httpsink: URL %s has no host", u.Redacted())
	}
	c.url, c.urlString = u, u.String()

	c.header = make(http.Header, len(c.Headers)+4)
	for k, v := range c.Headers {
		if !validHeaderName(k) {
			return c, fmt.Errorf("httpsink: header name %q is not a valid HTTP token", k)
		}
		if !validHeaderValue(v) {
			return c, fmt.Errorf("httpsink: header %s: value contains a control character", k)
		}
		ck := http.CanonicalHeaderKey(k)
		switch {
		case reservedHeaders[ck]:
			return c, fmt.Errorf("httpsink: header %s is set by the sink", ck)
		case ck == "Authorization" && c.Token != "":
			return c, errors.New("httpsink: both Token and an Authorization header")
		case ck == "Host":
			c.host = v
		default:
			c.header.Set(ck, v)
		}
	}
	if c.Token != "" {
		if !validHeaderValue(c.Token) || strings.TrimSpace(c.Token) != c.Token {
			return c, errors.New("httpsink: token contains whitespace or a control character")
		}
		c.header.Set("Authorization", "Bearer "+c.Token)
	}
	if c.header.Get("Content-Type") == "" {
		c.header.Set("Content-Type", "application/json")
	}
	if c.header.Get("User-Agent") == "" {
		c.header.Set("User-Agent", "sluice-httpsink")
	}
	if c.Gzip {
		c.header.Set("Content-Encoding", "gzip")
	}

	if c.Client == nil {
		c.client, c.own = newClient(), true
	} else {
		cl := *c.Client
		c.client = &cl
	}
	c.client.CheckRedirect = noRedirect
	return c, nil
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// newClient returns the default client: keep-alive connections to one
// upstream, proxies from the environment, bounded connect and handshake.
func newClient() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          8,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Responses are small; no transparent decompression.
		DisableCompression: true,
	}}
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue rejects control characters other than horizontal tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
