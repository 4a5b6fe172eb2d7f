package loadgen

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

// Mode is the push API a run uses.
type Mode string

// Modes.
const (
	// ModeSingle: POST /v1/topics/{topic}, one message per request, key in
	// the Sluice-Key header.
	ModeSingle Mode = "single"
	// ModeNDJSON: POST /v1/topics/{topic} with Content-Type
	// application/x-ndjson, Batch lines per request, one key per request.
	ModeNDJSON Mode = "ndjson"
	// ModeJSON: POST /v1/messages with {"messages":[...]}, Batch messages
	// per request, each with its own key and topic; the value is sent as a
	// JSON string.
	ModeJSON Mode = "json"
)

// Defaults for the zero values of Config.
const (
	DefaultURL              = "http://127.0.0.1:7101"
	DefaultMode             = ModeNDJSON
	DefaultSize             = 1024
	DefaultBatch            = 100
	DefaultConnections      = 64
	DefaultDuration         = 10 * time.Second
	DefaultTopic            = "bench"
	DefaultKeys             = 1000
	DefaultTimeout          = 30 * time.Second
	DefaultGrace            = 2 * time.Second
	DefaultProgressInterval = time.Second
	DefaultErrorPause       = 10 * time.Millisecond
)

// Config describes one load run. The zero value of every field means its
// default.
type Config struct {
	// URL of the agent's ingest listener: "http://127.0.0.1:7101" or
	// "unix:/path/to/socket". Default DefaultURL.
	URL string
	// Mode: single, ndjson or json. Default ndjson.
	Mode Mode
	// Size is the length in bytes of each message value (the JSON text
	// {"run":..,"key":..,"n":..,"pad":".."}). A value never gets shorter
	// than its fields without padding (about 40 bytes). In json mode the
	// text is sent as a JSON string, so the stored value is that text
	// quoted and escaped. Default 1024.
	Size int
	// Batch is the number of messages per request in ndjson and json mode
	// (single mode always sends one). Default 100.
	Batch int
	// Connections is the number of concurrent connections, each with one
	// request in flight at a time. Default 64.
	Connections int
	// Duration of the run. Count bounds the run instead when it is set and
	// Duration is zero; with both, whichever ends first. Default 10 s when
	// Count is zero too.
	Duration time.Duration
	// Count is the total number of messages to send; 0 = no limit.
	Count int64
	// Rate is the target number of messages per second over all
	// connections (open loop). 0 = closed loop: every connection sends its
	// next request as soon as the previous one was answered.
	Rate float64
	// Topic names the topic when Topics is 1; with more, the topics are
	// Topic-0 ... Topic-<Topics-1>. Default "bench".
	Topic string
	// Topics spreads the keys over this many topics (key i goes to topic
	// i mod Topics). Default 1.
	Topics int
	// Keys is the number of distinct keys k0 ... k<Keys-1>; negative means
	// messages without a key. Each key is owned by one connection, so the
	// pushes of one key are sequential and their order is defined.
	// Default 1000.
	Keys int
	// AckDelivered sends Sluice-Ack: delivered, with AckTimeout as
	// Sluice-Timeout when it is set.
	AckDelivered bool
	AckTimeout   time.Duration
	// Token is sent as "Authorization: Bearer <Token>" when set.
	Token string
	// Timeout bounds every request (connect, send, reply). Default 30 s,
	// and at least AckTimeout + 5 s.
	Timeout time.Duration
	// Grace, open loop only: after Duration, requests that were due before
	// the end but not sent yet (the target fell behind) are still sent for
	// this long; the rest count as Report.Missed. Default 2 s.
	Grace time.Duration
	// ErrorPause: a connection waits this long after a transport error
	// (refused, reset, timeout) in closed loop, so that a dead agent does
	// not make the generator spin. Default 10 ms; negative = no pause.
	ErrorPause time.Duration
	// Verify records the id of every acknowledged message with its key and
	// sequence number in Report.AckedIDs, for Verify. Requires Keys >=
	// Connections.
	Verify bool
	// RunID is written into every message value. Default: 16 random hex
	// digits.
	RunID string
	// Progress, when set, gets one line per ProgressInterval (default 1 s)
	// while the run goes on: rate, errors and p99 so far.
	Progress         io.Writer
	ProgressInterval time.Duration
}

// target is where requests go.
type target struct {
	addr   string // host:port for TCP; the socket path for unix
	unix   bool
	prefix string // scheme://host used in request URIs
}

func parseURL(s string) (target, error) {
	if p, ok := strings.CutPrefix(s, "unix:"); ok {
		p = strings.TrimPrefix(p, "//")
		if p == "" {
			return target{}, fmt.Errorf("%w: empty unix socket path in %q", ErrConfig, s)
		}
		return target{addr: p, unix: true, prefix: "http://localhost"}, nil
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return target{}, fmt.Errorf("%w: url: %w", ErrConfig, err)
	}
	if u.Scheme != "http" {
		return target{}, fmt.Errorf("%w: url %q: only http:// and unix: are supported", ErrConfig, s)
	}
	if u.Port() == "" {
		return target{}, fmt.Errorf("%w: url %q has no port", ErrConfig, s)
	}
	return target{addr: u.Host, prefix: "http://" + u.Host}, nil
}

// withDefaults returns c with every zero field set to its default, or an
// error wrapping ErrConfig.
func (c Config) withDefaults() (Config, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.Mode == "" {
		c.Mode = DefaultMode
	}
	def(&c.Size, DefaultSize)
	def(&c.Batch, DefaultBatch)
	def(&c.Connections, DefaultConnections)
	def(&c.Topics, 1)
	def(&c.Keys, DefaultKeys)
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.Duration == 0 && c.Count == 0 {
		c.Duration = DefaultDuration
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.AckDelivered && c.Timeout < c.AckTimeout+5*time.Second {
		c.Timeout = c.AckTimeout + 5*time.Second
	}
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.ErrorPause == 0 {
		c.ErrorPause = DefaultErrorPause
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
	if c.RunID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		c.RunID = hex.EncodeToString(b[:])
	}
	if c.Mode == ModeSingle {
		c.Batch = 1
	}

	bad := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	switch {
	case c.Mode != ModeSingle && c.Mode != ModeNDJSON && c.Mode != ModeJSON:
		return bad("mode %q: want single, ndjson or json", c.Mode)
	case c.Size < 0, c.Batch < 0, c.Connections < 0, c.Topics < 0:
		return bad("size, batch, connections and topics must be positive")
	case c.Duration < 0, c.Count < 0, c.Rate < 0, c.Timeout < 0, c.Grace < 0, c.AckTimeout < 0:
		return bad("duration, count, rate and timeouts must not be negative")
	case c.Verify && c.Keys < c.Connections:
		return bad("verify needs at least one key per connection (keys %d < connections %d)", c.Keys, c.Connections)
	case !validName(c.RunID):
		return bad("run id %q: use [a-zA-Z0-9._-]", c.RunID)
	}
	for _, t := range topicNames(c.Topic, c.Topics) {
		if len(t) > 249 || !validName(t) {
			return bad("topic %q: 1-249 of [a-zA-Z0-9._-]", t)
		}
	}
	return c, nil
}

// validName accepts what sluice accepts in a topic name; run ids use the
// same alphabet so they never need escaping.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// topicNames returns the topics of a run: base alone, or base-0 ... base-<n-1>.
func topicNames(base string, n int) []string {
	if n <= 1 {
		return []string{base}
	}
	ts := make([]string, n)
	for i := range ts {
		ts[i] = fmt.Sprintf("%s-%d", base, i)
	}
	return ts
}

// TopicNames returns the topics a run with this config pushes to.
func (c Config) TopicNames() []string {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	return topicNames(c.Topic, max(c.Topics, 1))
}
