package config

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits of SLUICE_SPOOL_SEGMENT_BYTES.
const (
	minSegmentBytes = 64 << 10
	maxSegmentBytes = 64 << 20
)

// maxUnixPath is the longest unix socket path Linux accepts (sun_path holds
// 108 bytes with the terminating NUL).
const maxUnixPath = 107

// checkTags applies the rules written in the struct tags of spec (a pointer
// to a struct): enum values are checked and lower-cased, durations must not
// be negative.
func (c *checker) checkTags(prefix string, spec any) {
	v := reflect.ValueOf(spec).Elem()
	for _, f := range fields(v.Type()) {
		name := prefix + "_" + envName(f)
		fv := v.FieldByIndex(f.Index)
		if allowed, ok := f.Tag.Lookup("enum"); ok {
			s := strings.ToLower(fv.String())
			fv.SetString(s)
			if !slices.Contains(strings.Split(allowed, "|"), s) {
				c.fail(name, "must be %s, got %q", enumText(allowed), s)
			}
		}
		if f.Type == durationType && fv.Int() < 0 {
			c.fail(name, "must not be negative, got %s", time.Duration(fv.Int()))
		}
	}
}

// enumText describes an enum tag: "one of a|b" or "empty or one of a|b".
func enumText(allowed string) string {
	if rest, ok := strings.CutPrefix(allowed, "|"); ok {
		return "empty or one of " + rest
	}
	return "one of " + allowed
}

func (c *checker) validateCore(cfg *Config) {
	const p = envPrefix + "_"
	c.checkTags(envPrefix, cfg)
	if c.ok(p + "LISTEN") {
		if rest, ok := strings.CutPrefix(cfg.Listen, "unix:"); ok {
			switch {
			case !strings.HasPrefix(rest, "/"):
				c.fail(p+"LISTEN", "unix socket path must be absolute (unix:/path), got %q", cfg.Listen)
			case len(rest) > maxUnixPath:
				c.fail(p+"LISTEN", "unix socket path is %d bytes long, the limit is %d", len(rest), maxUnixPath)
			}
		} else if err := checkHostPort(cfg.Listen, false); err != nil {
			c.fail(p+"LISTEN", "must be host:port or unix:/path: %v", err)
		}
	}
	if c.ok(p+"LISTEN") && cfg.AuthToken == "" && !cfg.AllowUnauthenticated && !loopbackListen(cfg.Listen) {
		c.fail(p+"LISTEN", "%q is not a loopback address or unix socket and SLUICE_AUTH_TOKEN is empty: anyone who reaches it could push; "+
			"set SLUICE_AUTH_TOKEN, listen on 127.0.0.1 or unix:/path, or set SLUICE_ALLOW_UNAUTHENTICATED=true to accept that", cfg.Listen)
	}
	if c.ok(p + "ADMIN_LISTEN") {
		if err := checkHostPort(cfg.AdminListen, false); err != nil {
			c.fail(p+"ADMIN_LISTEN", "%v", err)
		}
	}
	c.validateListenKafka(cfg)
	if s := cfg.SpoolSegmentBytes; s < minSegmentBytes || s > maxSegmentBytes {
		c.fail(p+"SPOOL_SEGMENT_BYTES", "must be between %v and %v, got %v", Bytes(minSegmentBytes), Bytes(maxSegmentBytes), s)
	}
	if c.ok(p+"SPOOL_SEGMENT_BYTES") && cfg.SpoolMaxBytes < 4*cfg.SpoolSegmentBytes {
		c.fail(p+"SPOOL_MAX_BYTES", "must be at least 4 × SLUICE_SPOOL_SEGMENT_BYTES (%v), got %v", 4*cfg.SpoolSegmentBytes, cfg.SpoolMaxBytes)
	}
	c.positive(p+"SPOOL_SYNC_INTERVAL", int64(cfg.SpoolSyncInterval))
	c.positive(p+"SPOOL_APPEND_TIMEOUT", int64(cfg.SpoolAppendTimeout))
	c.positive(p+"MAX_MESSAGE_BYTES", int64(cfg.MaxMessageBytes))
	c.positive(p+"MAX_HEADER_BYTES", int64(cfg.MaxHeaderBytes))
	c.positive(p+"MAX_HEADERS", int64(cfg.MaxHeaders))
	c.positive(p+"MAX_CONNECTIONS", int64(cfg.MaxConnections))
	atLeast(c, p+"MAX_REQUEST_BYTES", cfg.MaxRequestBytes, p+"MAX_MESSAGE_BYTES", cfg.MaxMessageBytes)
	atLeast(c, p+"MAX_INFLIGHT_BYTES", cfg.MaxInflightBytes, p+"MAX_REQUEST_BYTES", cfg.MaxRequestBytes)
	if c.ok(p+"DEADLETTER_MAX_BYTES", p+"MAX_MESSAGE_BYTES", p+"MAX_HEADER_BYTES") {
		if lo := MinDeadletterBytes(cfg.MaxMessageBytes, cfg.MaxHeaderBytes); cfg.DeadletterMaxBytes < lo {
			c.fail(p+"DEADLETTER_MAX_BYTES", "must be at least %d bytes (SLUICE_MAX_MESSAGE_BYTES + SLUICE_MAX_HEADER_BYTES + %d bytes of record and dead-letter envelope), "+
				"or a message the sink refuses could never be dead-lettered; got %v", int64(lo), DeadLetterRecordOverhead, cfg.DeadletterMaxBytes)
		}
	}
	c.positive(p+"ACK_TIMEOUT", int64(cfg.AckTimeout))
	atLeast(c, p+"ACK_TIMEOUT_MAX", cfg.AckTimeoutMax, p+"ACK_TIMEOUT", cfg.AckTimeout)
	c.positive(p+"READ_TIMEOUT", int64(cfg.ReadTimeout))
	c.positive(p+"WRITE_TIMEOUT", int64(cfg.WriteTimeout))
	c.positive(p+"IDLE_TIMEOUT", int64(cfg.IdleTimeout))
	c.positive(p+"RECORD_CACHE", int64(cfg.RecordCache))
	c.positive(p+"IDEMPOTENCY_MAX_KEYS", int64(cfg.IdempotencyMaxKeys))
	c.positive(p+"IDEMPOTENCY_WINDOW", int64(cfg.IdempotencyWindow))
	if cfg.CallbackMaxBytes < 1<<20 {
		c.fail(p+"CALLBACK_MAX_BYTES", "must be at least 1MiB, got %v", cfg.CallbackMaxBytes)
	}
	c.positive(p+"CALLBACK_MAX_PENDING", int64(cfg.CallbackMaxPending))
	c.positive(p+"CALLBACK_ATTEMPTS", int64(cfg.CallbackAttempts))
	c.positive(p+"CALLBACK_BACKOFF", int64(cfg.CallbackBackoff))
}

// MaxSinkNameBytes bounds a sink name (it is part of every dead letter's
// envelope: agent.MaxSinkNameBytes).
const MaxSinkNameBytes = 64

// DeadLetterRecordOverhead is what a dead letter adds on disk to a
// message's value and header bytes: the message record's fixed fields
// (agent.RecordSlack), the dead-letter envelope (agent.DeadLetterOverhead)
// and the spool's framing (spool.RecordOverhead). config imports neither
// package; a test in cmd/sluice checks the sum.
const DeadLetterRecordOverhead = 16<<10 + 1309 + 41

// MinDeadletterBytes is the smallest dead-letter log that can hold the
// largest message the agent accepts as a dead letter.
func MinDeadletterBytes(maxMessage, maxHeader Bytes) Bytes {
	return maxMessage + maxHeader + DeadLetterRecordOverhead
}

// validateListenKafka checks the Kafka listener: a loopback host:port (it
// has no TLS), partition counts from 1 to 100000.
func (c *checker) validateListenKafka(cfg *Config) {
	const p = envPrefix + "_LISTEN_KAFKA"
	if cfg.ListenKafka != "" && c.ok(p) {
		if err := checkHostPort(cfg.ListenKafka, true); err != nil {
			c.fail(p, "%v", err)
		} else if host, _, _ := net.SplitHostPort(cfg.ListenKafka); !isLoopback(host) {
			c.fail(p, "must be a loopback address (127.0.0.1, [::1] or localhost): the Kafka listener has no TLS, got %q", cfg.ListenKafka)
		}
	}
	if n := cfg.ListenKafkaPartitions; c.ok(p+"_PARTITIONS") && (n < 0 || n > maxPartitions) {
		c.fail(p+"_PARTITIONS", "must be from 0 to %d, got %d", maxPartitions, n)
	}
	if c.ok(p + "_TOPIC_PARTITIONS") {
		for t, v := range cfg.ListenKafkaTopicPartitions {
			if err := checkKafkaTopic(t); err != nil {
				c.fail(p+"_TOPIC_PARTITIONS", "%v", err)
			} else if n, err := strconv.Atoi(v); err != nil || n < 1 || n > maxPartitions {
				c.fail(p+"_TOPIC_PARTITIONS", "topic %s: partition count must be a number from 1 to %d, got %q", t, maxPartitions, v)
			}
		}
	}
}

// maxPartitions bounds advertised partition counts.
const maxPartitions = 100000

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// positive fails name unless v > 0.
func (c *checker) positive(name string, v int64) {
	if v <= 0 {
		c.fail(name, "must be greater than 0, got %d", v)
	}
}

// atLeast fails name unless its value v is at least lo, the value of
// variable loName (when both were read without error).
func atLeast[T Bytes | time.Duration](c *checker, name string, v T, loName string, lo T) {
	if c.ok(name, loName) && v < lo {
		c.fail(name, "must be at least %s (%v), got %v", loName, lo, v)
	}
}

// sinkNameRE is the syntax of a sink name (after lower-casing).
var sinkNameRE = regexp.MustCompile(`^[a-z0-9]+$`)

// reservedExtra are reserved sink names that are not (yet) the first word of
// a core setting: words kept for core settings to come, and "type".
var reservedExtra = []string{"callback", "idempotency", "restproxy", "type"}

// reservedNames are the sink names that SLUICE_<NAME>_... would confuse with
// core settings: the first word of every core setting, and reservedExtra.
func reservedNames() map[string]bool {
	r := map[string]bool{}
	for _, f := range fields(reflect.TypeFor[Config]()) {
		first, _, _ := strings.Cut(envName(f), "_")
		r[strings.ToLower(first)] = true
	}
	for _, w := range reservedExtra {
		r[w] = true
	}
	return r
}

// loadSinks checks SLUICE_SINKS, lower-cases the names and reads each sink.
// It returns the type of every well-named sink ("" when its type is invalid),
// for the unknown-variable check.
func (c *checker) loadSinks(cfg *Config) map[string]string {
	const name = envPrefix + "_SINKS"
	types := map[string]string{}
	if !c.ok(name) {
		return types
	}
	if len(cfg.Sinks) == 0 {
		c.fail(name, "must name at least one sink")
		return types
	}
	reserved := reservedNames()
	var problems []string
	names := make(List, 0, len(cfg.Sinks))
	for _, raw := range cfg.Sinks {
		n := strings.ToLower(raw)
		switch {
		case !sinkNameRE.MatchString(n):
			problems = append(problems, fmt.Sprintf("sink name %q must be letters and digits only", raw))
		case len(n) > MaxSinkNameBytes:
			problems = append(problems, fmt.Sprintf("sink name %q is longer than %d bytes", raw, MaxSinkNameBytes))
		case reserved[n]:
			problems = append(problems, fmt.Sprintf("sink name %q is reserved (SLUICE_%s_... would clash with core settings)", raw, strings.ToUpper(n)))
		case slices.Contains(names, n):
			problems = append(problems, fmt.Sprintf("sink name %q appears twice", n))
		default:
			names = append(names, n)
		}
	}
	if len(problems) > 0 {
		c.fail(name, "%s", strings.Join(problems, "; "))
	}
	cfg.Sinks = names
	for _, n := range names {
		s := c.loadSink(cfg, n)
		types[n] = s.Type
		cfg.SinkConfigs = append(cfg.SinkConfigs, s)
	}
	return types
}

// loadSink reads and validates sink n. Its Type is "" when invalid.
func (c *checker) loadSink(cfg *Config, n string) Sink {
	p := envPrefix + "_" + strings.ToUpper(n)
	s := Sink{Name: n}
	c.add(process(p, &s, ""))
	typeVar := p + "_TYPE"
	if s.Type == "" && c.ok(typeVar) {
		s.Type = n
		if !slices.Contains(typeNames(), n) {
			c.fail(typeVar, "not set, and the sink name %q is not a sink type: set it to one of %s", n, strings.Join(typeNames(), "|"))
		}
	}
	c.checkTags(p, &s)
	if !c.ok(typeVar) {
		s.Type = ""
	}
	c.validateCommon(cfg, p, &s)
	owner := fmt.Sprintf("sink %q (type %s)", n, s.Type)
	if t := findSinkType(s.Type); t != nil {
		t.load(c, p, owner, &s)
	}
	return s
}

func (c *checker) validateCommon(cfg *Config, p string, s *Sink) {
	if c.ok(p + "_TOPICS") {
		if len(s.Topics) == 0 {
			c.fail(p+"_TOPICS", "must list at least one topic glob (* for all)")
		}
		for _, g := range s.Topics {
			if _, err := path.Match(g, ""); err != nil {
				c.fail(p+"_TOPICS", "bad glob %q: %v", g, err)
			}
		}
	}
	if c.ok(p+"_MAX_BACKLOG_BYTES", envPrefix+"_SPOOL_MAX_BYTES") && s.MaxBacklogBytes > cfg.SpoolMaxBytes {
		c.fail(p+"_MAX_BACKLOG_BYTES", "must not exceed SLUICE_SPOOL_MAX_BYTES (%v), got %v; 0 means the spool cap", cfg.SpoolMaxBytes, s.MaxBacklogBytes)
	}
	c.positive(p+"_BATCH_MESSAGES", int64(s.BatchMessages))
	c.positive(p+"_BATCH_BYTES", int64(s.BatchBytes))
	c.positive(p+"_RETRY_MIN", int64(s.RetryMin))
	atLeast(c, p+"_RETRY_MAX", s.RetryMax, p+"_RETRY_MIN", s.RetryMin)
}

func (c *checker) validateFile(p string, f *FileSink) {
	c.positive(p+"_ROTATE_BYTES", int64(f.RotateBytes))
}

func (c *checker) validateQueue(p string, q *QueueSink) {
	if c.ok(p+"_VISIBILITY") && (q.Visibility < time.Second || q.Visibility > 12*time.Hour) {
		c.fail(p+"_VISIBILITY", "must be between 1s and 12h, got %s", q.Visibility)
	}
	if c.ok(p+"_MAX_ATTEMPTS") && q.MaxAttempts < 0 {
		c.fail(p+"_MAX_ATTEMPTS", "must be 0 (unlimited) or more, got %d", q.MaxAttempts)
	}
}

func (c *checker) validateKafka(p string, k *KafkaSink) {
	if c.ok(p + "_BROKERS") {
		for _, b := range k.Brokers {
			if err := checkHostPort(b, true); err != nil {
				c.fail(p+"_BROKERS", "broker %q: %v", b, err)
			}
		}
	}
	if strings.TrimSpace(k.ClientID) == "" {
		c.fail(p+"_CLIENT_ID", "must not be blank")
	}
	c.positive(p+"_WRITE_TIMEOUT", int64(k.WriteTimeout))
	c.positive(p+"_DIAL_TIMEOUT", int64(k.DialTimeout))
	c.positive(p+"_MAX_MESSAGE_BYTES", int64(k.MaxMessageBytes))
	if k.TopicPrefix != "" && !kafkaTopicRE.MatchString(k.TopicPrefix) {
		c.fail(p+"_TOPIC_PREFIX", "may hold only letters, digits, '.', '_' and '-', got %q", k.TopicPrefix)
	}
	if c.ok(p + "_TOPIC_MAP") {
		for _, from := range slices.Sorted(maps.Keys(k.TopicMap)) {
			to := k.TopicMap[from]
			if err := checkKafkaTopic(k.TopicPrefix + to); err != nil {
				c.fail(p+"_TOPIC_MAP", "%s=%s: %v", from, to, err)
			}
		}
	}
	if k.DeadletterTopic != "" {
		if err := checkKafkaTopic(k.DeadletterTopic); err != nil {
			c.fail(p+"_DEADLETTER_TOPIC", "%v", err)
		}
	}

	tlsSettings := []struct {
		name string
		set  bool
	}{
		{"_TLS_CA_FILE", k.TLSCaFile != ""},
		{"_TLS_CERT_FILE", k.TLSCertFile != ""},
		{"_TLS_KEY_FILE", k.TLSKeyFile != ""},
		{"_TLS_SERVER_NAME", k.TLSServerName != ""},
		{"_TLS_INSECURE_SKIP_VERIFY", k.TLSInsecureSkipVerify},
	}
	if c.ok(p+"_TLS") && !k.TLS {
		for _, t := range tlsSettings {
			if t.set {
				c.fail(p+t.name, "set, but %s_TLS is false", p)
			}
		}
	}
	switch {
	case k.TLSCertFile != "" && k.TLSKeyFile == "":
		c.fail(p+"_TLS_KEY_FILE", "required with %s_TLS_CERT_FILE", p)
	case k.TLSKeyFile != "" && k.TLSCertFile == "":
		c.fail(p+"_TLS_CERT_FILE", "required with %s_TLS_KEY_FILE", p)
	}

	mech := p + "_SASL_MECHANISM"
	if !c.ok(mech) {
		return
	}
	if k.SASLMechanism == "" {
		for _, t := range []struct {
			name string
			set  bool
		}{
			{"_SASL_USERNAME", k.SASLUsername != ""},
			{"_SASL_PASSWORD", k.SASLPassword != ""},
			{"_SASL_PASSWORD_FILE", k.SASLPasswordFile != ""},
		} {
			if t.set {
				c.fail(p+t.name, "set, but %s is empty", mech)
			}
		}
		return
	}
	if k.SASLUsername == "" {
		c.fail(p+"_SASL_USERNAME", "required with %s=%s", mech, k.SASLMechanism)
	}
	switch {
	case k.SASLPassword != "" && k.SASLPasswordFile != "":
		c.fail(p+"_SASL_PASSWORD_FILE", "set together with %s_SASL_PASSWORD: set one of them", p)
	case k.SASLPassword == "" && k.SASLPasswordFile == "":
		c.fail(p+"_SASL_PASSWORD", "required with %s=%s (or set %s_SASL_PASSWORD_FILE)", mech, k.SASLMechanism, p)
	}
}

func (c *checker) validateHTTP(p string, h *HTTPSink) {
	if c.ok(p + "_URL") {
		u, err := url.Parse(h.URL)
		switch {
		case err != nil:
			c.fail(p+"_URL", "not a URL: %v", unwrapURLError(err))
		case u.Scheme != "http" && u.Scheme != "https":
			c.fail(p+"_URL", "must be an http:// or https:// URL, got scheme %q", u.Scheme)
		case u.Host == "":
			c.fail(p+"_URL", "has no host")
		}
	}
	if h.Token != "" && h.TokenFile != "" {
		c.fail(p+"_TOKEN_FILE", "set together with %s_TOKEN: set one of them", p)
	}
	if c.ok(p + "_HEADERS") {
		for _, k := range slices.Sorted(maps.Keys(h.Headers)) {
			switch {
			case !headerNameRE.MatchString(k):
				c.fail(p+"_HEADERS", "%q is not a valid header name", k)
			case strings.ContainsAny(h.Headers[k], "\r\n\x00"):
				c.fail(p+"_HEADERS", "the value of %s holds a control character", k)
			}
		}
	}
	c.positive(p+"_TIMEOUT", int64(h.Timeout))
}

// loopbackListen reports whether an ingest address (already checked) only
// admits local clients: a unix socket, localhost, or a loopback IP. An empty
// host (":7101") listens on every interface.
func loopbackListen(addr string) bool {
	if strings.HasPrefix(addr, "unix:") {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// checkHostPort checks "host:port" with a numeric port 1-65535; the host may
// be empty (all interfaces) unless needHost.
func checkHostPort(s string, needHost bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("must be host:port (an IPv6 host in brackets: [::1]:7101), got %q", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port must be a number from 1 to 65535, got %q", port)
	}
	switch {
	case host == "" && needHost:
		return fmt.Errorf("host:port needs a host, got %q", s)
	case host == "":
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if !hostnameRE.MatchString(host) {
		return fmt.Errorf("%q is neither an IP address nor a host name", host)
	}
	return nil
}

var (
	hostnameRE   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?)*\.?$`)
	kafkaTopicRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// checkKafkaTopic checks a topic name as the brokers would.
func checkKafkaTopic(t string) error {
	switch {
	case t == "":
		return fmt.Errorf("empty topic name")
	case t == "." || t == "..":
		return fmt.Errorf("topic name %q is not allowed", t)
	case len(t) > 249:
		return fmt.Errorf("topic name %q is longer than 249 characters", t)
	case !kafkaTopicRE.MatchString(t):
		return fmt.Errorf("topic name %q may hold only letters, digits, '.', '_' and '-'", t)
	}
	return nil
}

// unwrapURLError drops the "parse URL:" wrapping, which would repeat the
// value (and any credentials in it) in the message.
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
