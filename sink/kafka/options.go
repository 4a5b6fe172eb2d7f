package kafka

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/sluiceio/sluice/sink"
)

// Defaults applied to zero-valued Options fields.
const (
	DefaultName              = "kafka"
	DefaultClientID          = "sluice"
	DefaultAcks              = "all"
	DefaultCompression       = "none"
	DefaultPartitioner       = "murmur2"
	DefaultWriteTimeout      = 10 * time.Second
	DefaultDialTimeout       = 5 * time.Second
	DefaultIdleTimeout       = 30 * time.Second
	DefaultMetadataTTL       = 15 * time.Second
	DefaultMaxMessageBytes   = 1 << 20
	DefaultBatchMessages     = 1000
	DefaultUnknownTopicGrace = 5 * time.Minute
)

// Options configures a Writer. The zero value of every field except Brokers
// means the documented default.
type Options struct {
	// Name is the sink name, used as the metric label sink="<name>" and in
	// logs. Letters, digits, '_', '.' and '-' only. Default "kafka".
	Name string
	// Brokers are the bootstrap brokers, "host:port". Required.
	Brokers []string
	// ClientID is sent to the brokers with every request. Default "sluice".
	ClientID string
	// Acks is how many replicas must acknowledge a write: "all" (default,
	// every in-sync replica: the only setting under which a nil Write means
	// durable upstream), "one" (the leader) or "none" (fire and forget; no
	// delivery reports).
	Acks string
	// Compression codec for record batches: "none" (default), "gzip",
	// "snappy", "lz4" or "zstd".
	Compression string
	// Partitioner picks the partition of a message without an explicit one:
	//   - "murmur2" (default): the Java client's partitioner, positive
	//     murmur2 of the key modulo the partition count; keyless messages
	//     go round-robin. librdkafka calls it "murmur2_random".
	//   - "hash": kafka-go's Hash (FNV-1a, Sarama compatible); keyless
	//     round-robin.
	//   - "round_robin": ignore keys.
	//   - "least_bytes": the partition that received the fewest bytes from
	//     this Writer; ignores keys.
	Partitioner string
	// WriteTimeout bounds one Write: metadata lookup, connecting and the
	// produce round trip. Default 10s.
	WriteTimeout time.Duration
	// DialTimeout bounds connecting to a broker, including the TLS handshake
	// and SASL authentication. Default 5s.
	DialTimeout time.Duration
	// IdleTimeout closes connections unused for this long. Default 30s.
	IdleTimeout time.Duration
	// MetadataTTL is the upper bound of the cluster metadata cache age; the
	// cache is also dropped after network, leader, authentication and
	// unknown-topic errors. Default 15s.
	MetadataTTL time.Duration
	// MaxMessageBytes is the largest record batch a request may carry, and
	// so the largest message: set it to the topics' max.message.bytes
	// (broker message.max.bytes). A message whose encoded, uncompressed
	// single-record batch exceeds it fails with a per-message Permanent
	// error (reason "too_large") before anything is sent. Default 1 MiB.
	MaxMessageBytes int
	// BatchMessages is the most messages sent to one partition in one
	// produce request. The messages of one Write bound for one partition go
	// out in one request when they fit BatchMessages and MaxMessageBytes,
	// else in several requests one after the other, never past a failed one
	// (so per-key order holds). Each request allocates room for
	// BatchMessages messages: keep it near the forwarder's batch size.
	// Default 1000.
	BatchMessages int
	// TopicMap renames sluice topics to Kafka topics; topics not in the map
	// keep their name. It is applied before TopicPrefix.
	TopicMap map[string]string
	// TopicPrefix is prepended to every Kafka topic name (after TopicMap).
	TopicPrefix string
	// UnknownTopicGrace is how long a topic the cluster does not know keeps
	// failing transiently (it may be about to be created) before its
	// messages fail permanently with reason "unknown_topic". It runs from
	// the first time this Writer saw the topic unknown; a delivery to the
	// topic resets it. Default 5m; negative means no grace.
	UnknownTopicGrace time.Duration
	// TLS enables TLS to the brokers; see TLSConfig. nil = plaintext.
	TLS *tls.Config
	// SASL enables SASL authentication.
	SASL SASL
	// Logger receives state changes (broker reachable or not, authentication
	// failing, unknown topics turning permanent). nil = no logs.
	Logger *slog.Logger
	// Metrics receives the sink's metrics. nil = no metrics.
	Metrics *metrics.Set
	// Now is the clock for UnknownTopicGrace. nil = time.Now.
	Now func() time.Time
}

// SASL configures SASL authentication. Password is never logged nor part of
// an error; String and LogValue redact it.
type SASL struct {
	// Mechanism is "" (no SASL), "plain", "scram-sha-256" or
	// "scram-sha-512" (case-insensitive).
	Mechanism string
	Username  string
	Password  string
}

// String describes s without the password.
func (s SASL) String() string {
	if s.Mechanism == "" {
		return "none"
	}
	pw := "<empty>"
	if s.Password != "" {
		pw = "<redacted>"
	}
	return fmt.Sprintf("mechanism=%s username=%s password=%s", s.Mechanism, s.Username, pw)
}

// GoString is String, so %#v does not print the password either.
func (s SASL) GoString() string { return "kafka.SASL{" + s.String() + "}" }

// LogValue implements slog.LogValuer without the password.
func (s SASL) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("mechanism", s.Mechanism),
		slog.String("username", s.Username),
		slog.Bool("password_set", s.Password != ""),
	)
}

// config is Options with defaults applied and strings parsed.
type config struct {
	Options
	acks        kafkago.RequiredAcks
	compression kafkago.Compression
	mechanism   string // normalised: "", "plain", "scram-sha-256", "scram-sha-512"
}

func (o Options) withDefaults() (config, error) {
	c := config{Options: o}
	if c.Name == "" {
		c.Name = DefaultName
	}
	if !validName(c.Name) {
		return c, fmt.Errorf("kafka: invalid sink name %q (letters, digits, '_', '.', '-')", c.Name)
	}
	if len(c.Brokers) == 0 {
		return c, errors.New("kafka: no brokers")
	}
	for _, b := range c.Brokers {
		if strings.TrimSpace(b) == "" || strings.ContainsAny(b, ", \t") {
			return c, fmt.Errorf("kafka: invalid broker address %q", b)
		}
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}

	switch strings.ToLower(c.Acks) {
	case "", "all", "-1":
		c.Acks, c.acks = "all", kafkago.RequireAll
	case "one", "1":
		c.Acks, c.acks = "one", kafkago.RequireOne
	case "none", "0":
		c.Acks, c.acks = "none", kafkago.RequireNone
	default:
		return c, fmt.Errorf("kafka: invalid acks %q (all, one, none)", c.Acks)
	}

	switch strings.ToLower(c.Compression) {
	case "", "none":
		c.Compression, c.compression = "none", 0
	case "gzip":
		c.Compression, c.compression = "gzip", kafkago.Gzip
	case "snappy":
		c.Compression, c.compression = "snappy", kafkago.Snappy
	case "lz4":
		c.Compression, c.compression = "lz4", kafkago.Lz4
	case "zstd":
		c.Compression, c.compression = "zstd", kafkago.Zstd
	default:
		return c, fmt.Errorf("kafka: invalid compression %q (none, gzip, snappy, lz4, zstd)", c.Compression)
	}

	switch p := strings.ToLower(c.Partitioner); p {
	case "":
		c.Partitioner = DefaultPartitioner
	case "murmur2", "hash", "round_robin", "least_bytes":
		c.Partitioner = p
	default:
		return c, fmt.Errorf("kafka: invalid partitioner %q (murmur2, hash, round_robin, least_bytes)", c.Partitioner)
	}

	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"write timeout", &c.WriteTimeout, DefaultWriteTimeout},
		{"dial timeout", &c.DialTimeout, DefaultDialTimeout},
		{"idle timeout", &c.IdleTimeout, DefaultIdleTimeout},
		{"metadata ttl", &c.MetadataTTL, DefaultMetadataTTL},
	} {
		switch {
		case *d.v < 0:
			return c, fmt.Errorf("kafka: negative %s %v", d.name, *d.v)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	switch {
	case c.UnknownTopicGrace == 0:
		c.UnknownTopicGrace = DefaultUnknownTopicGrace
	case c.UnknownTopicGrace < 0:
		c.UnknownTopicGrace = 0
	}

	switch {
	case c.MaxMessageBytes < 0:
		return c, fmt.Errorf("kafka: negative max message bytes %d", c.MaxMessageBytes)
	case c.MaxMessageBytes == 0:
		c.MaxMessageBytes = DefaultMaxMessageBytes
	case c.MaxMessageBytes < recordBatchOverhead+64:
		return c, fmt.Errorf("kafka: max message bytes %d is too small", c.MaxMessageBytes)
	}
	switch {
	case c.BatchMessages < 0:
		return c, fmt.Errorf("kafka: negative batch messages %d", c.BatchMessages)
	case c.BatchMessages == 0:
		c.BatchMessages = DefaultBatchMessages
	}

	for from, to := range c.TopicMap {
		if from == "" || to == "" {
			return c, fmt.Errorf("kafka: topic map entry %q -> %q: empty name", from, to)
		}
		if !sink.ValidTopic(c.TopicPrefix + to) {
			return c, fmt.Errorf("kafka: topic map entry %q -> %q: %q is not a valid Kafka topic name", from, to, c.TopicPrefix+to)
		}
	}
	if c.TopicPrefix != "" && !sink.ValidTopic(c.TopicPrefix) {
		return c, fmt.Errorf("kafka: topic prefix %q has characters Kafka does not allow", c.TopicPrefix)
	}

	switch m := strings.ToLower(c.SASL.Mechanism); m {
	case "":
	case "plain", "scram-sha-256", "scram-sha-512":
		c.mechanism = m
		if c.SASL.Username == "" {
			return c, fmt.Errorf("kafka: sasl mechanism %s needs a username", m)
		}
	default:
		return c, fmt.Errorf("kafka: invalid sasl mechanism %q (plain, scram-sha-256, scram-sha-512)", c.SASL.Mechanism)
	}

	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

func validName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return false
		}
	}
	return s != ""
}
