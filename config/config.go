package config

import (
	"os"
	"time"
)

// Struct tags read by this package (besides envconfig's split_words, default
// and ignored):
//
//	desc         one-line description for Variables and Reference
//	example      a valid example value (tests load every example)
//	secret       "true": Redacted prints <redacted>; "userinfo": a URL (or a
//	             comma list of URLs) whose password, or user name given
//	             alone (a token), Redacted hides
//	enum         allowed values separated by '|' (an empty first alternative
//	             means "may be empty"); matched without regard to case and
//	             stored lower-cased
//	required     "true": the variable must be set (checked by this package,
//	             with a message that names the sink)
//	doc_default  the default as documented, when it is not a constant

// Config is the agent's configuration: core settings read from SLUICE_<SETTING>
// and one Sink per name in SLUICE_SINKS.
type Config struct {
	Listen      string `split_words:"true" default:"127.0.0.1:7101" example:"unix:/run/sluice/sluice.sock" desc:"Ingest listener: host:port, or unix:/absolute/path for a unix socket."`
	AdminListen string `split_words:"true" default:":7103" example:"127.0.0.1:7103" desc:"Admin listener (read-only: /livez, /readyz, /metrics, /v1/stats): host:port."`
	AuthToken   string `split_words:"true" secret:"true" example:"change-me" desc:"Bearer token every call on the ingest listener must present (Authorization: Bearer <token>), control calls included, and the SASL/PLAIN password of the Kafka listener (SLUICE_LISTEN_KAFKA); empty = no token check. Required when SLUICE_LISTEN is not a loopback address or unix socket (see SLUICE_ALLOW_UNAUTHENTICATED)."`
	// AllowUnauthenticated is the explicit opt-out of the rule that a
	// non-loopback ingest listener needs a token.
	AllowUnauthenticated bool `split_words:"true" default:"false" example:"true" desc:"Start even though SLUICE_LISTEN is not a loopback address and SLUICE_AUTH_TOKEN is empty: anyone who reaches the listener can push (control calls still need the control token). Only behind a network policy that admits the intended clients alone."`

	SpoolDir           string        `split_words:"true" default:"sluice-spool" example:"/var/lib/sluice/spool" desc:"Spool directory (write-ahead log, cursors, dead letters); one agent at a time. An emptyDir spool dies with its pod."`
	SpoolMaxBytes      Bytes         `split_words:"true" default:"1GiB" example:"10GiB" desc:"Byte cap of the spool; at the cap SLUICE_SPOOL_FULL_POLICY applies. At least 4 × SLUICE_SPOOL_SEGMENT_BYTES."`
	SpoolSegmentBytes  Bytes         `split_words:"true" default:"1MiB" example:"4MiB" desc:"Size at which a spool segment file is closed and the next one started (64KiB to 64MiB). The tail segment is also held in memory: larger segments cost RSS and latency spikes while it grows."`
	SpoolSync          string        `split_words:"true" default:"always" enum:"always|interval|never" example:"interval" desc:"When appends are fsynced: always (before the push is acknowledged, one fsync per group commit), interval (every SLUICE_SPOOL_SYNC_INTERVAL: survives a process crash, not a machine crash), never (left to the OS)."`
	SpoolSyncInterval  time.Duration `split_words:"true" default:"100ms" example:"1s" desc:"Fsync period when SLUICE_SPOOL_SYNC=interval."`
	SpoolFullPolicy    string        `split_words:"true" default:"reject" enum:"reject|drop_oldest" example:"drop_oldest" desc:"At the spool cap: reject (503 spool_full + Retry-After) or drop_oldest (evict the oldest undelivered messages, counted)."`
	SpoolOrphanCursors string        `split_words:"true" default:"keep" enum:"keep|remove" example:"remove" desc:"Cursors of sinks no longer in SLUICE_SINKS hold their backlog in the spool: keep (default: a sink removed by mistake loses nothing; shown in sluice status, sluice_spool_orphan_backlog_bytes and a warning every 5 minutes, and the spool fills behind it) or remove (deleted at start, their backlog given up, logged)."`
	SpoolAppendTimeout time.Duration `split_words:"true" default:"5s" example:"2s" desc:"Longest wait for a spool append before the push answers 503 spool_timeout."`

	DeadletterMaxBytes Bytes `split_words:"true" default:"64MiB" example:"256MiB" desc:"Byte cap of the dead-letter log; when full, the oldest dead letters are discarded and counted. At least SLUICE_MAX_MESSAGE_BYTES + SLUICE_MAX_HEADER_BYTES + 17734 bytes (record and dead-letter envelope), so that every message the agent accepts can be dead-lettered."`

	DrainTimeout time.Duration `split_words:"true" default:"20s" example:"1m0s" desc:"On SIGTERM, how long to keep forwarding the backlog before exiting (0 = exit at once)."`
	DrainAccept  bool          `split_words:"true" default:"false" example:"true" desc:"Keep accepting pushes during the drain (sidecars that are not native, whose app may still run)."`

	LogLevel  string `split_words:"true" default:"info" enum:"debug|info|warn|error" example:"debug" desc:"Lowest level logged."`
	LogFormat string `split_words:"true" default:"json" enum:"json|text" example:"text" desc:"Log line format."`

	MaxMessageBytes  Bytes `split_words:"true" default:"1MiB" example:"4MiB" desc:"Largest message accepted (413 too_large above)."`
	MaxRequestBytes  Bytes `split_words:"true" default:"16MiB" example:"32MiB" desc:"Largest request body (413 too_large above). At least SLUICE_MAX_MESSAGE_BYTES."`
	MaxHeaderBytes   Bytes `split_words:"true" default:"16KiB" example:"32KiB" desc:"Largest request header block (431 headers_too_large above)."`
	MaxHeaders       int   `split_words:"true" default:"64" example:"128" desc:"Most headers one message may carry (Sluice-Header-* or the JSON headers field)."`
	MaxInflightBytes Bytes `split_words:"true" default:"64MiB" example:"128MiB" desc:"Request memory held at once, over all connections: bodies (gzip: decompressed), and NDJSON messages at about 224 bytes each besides their bytes. A request needing more than all of it is 413. At least SLUICE_MAX_REQUEST_BYTES."`
	MaxConnections   int   `split_words:"true" default:"4096" example:"1024" desc:"Most concurrent connections on the ingest listener."`

	AckTimeout    time.Duration `split_words:"true" default:"10s" example:"30s" desc:"Sluice-Timeout used when a Sluice-Ack: delivered push sets none."`
	AckTimeoutMax time.Duration `split_words:"true" default:"60s" example:"2m0s" desc:"Largest Sluice-Timeout a push may ask for. At least SLUICE_ACK_TIMEOUT."`

	ReadTimeout  time.Duration `split_words:"true" default:"10s" example:"30s" desc:"Time allowed to read a whole request (a slow client gets 408 timeout)."`
	WriteTimeout time.Duration `split_words:"true" default:"10s" example:"30s" desc:"Time allowed to write a response."`
	IdleTimeout  time.Duration `split_words:"true" default:"60s" example:"2m0s" desc:"How long an idle keep-alive connection stays open."`

	RecordCache int `split_words:"true" default:"65536" example:"262144" desc:"Entries in the bounded cache of delivery reports (Kafka partition and offset) behind GET /v1/messages/{id}."`

	CallbackAllow List `split_words:"true" example:"10.0.0.0/8,*.hooks.internal" desc:"Callback targets allowed besides loopback: CIDRs (those addresses) and host globs (those names, resolving to any unicast address but link-local). Empty = loopback only."`

	CallbackMaxBytes   Bytes         `split_words:"true" default:"64MiB" example:"256MiB" desc:"Byte cap of the callback report store (<SPOOL_DIR>/callbacks), separate from the spool: a dead receiver never holds the spool. When full, the oldest reports are discarded and counted (sluice_callbacks_dropped_total). At least 1MiB."`
	CallbackMaxPending int           `split_words:"true" default:"100000" example:"20000" desc:"Most callback reports owed at once (held in memory); past it the oldest report of the receiver host with the most pending is dropped and counted (sluice_callbacks_dropped_total)."`
	CallbackAttempts   int           `split_words:"true" default:"5" example:"10" desc:"Tries per callback report before it is given up (counted in sluice_callbacks_given_up_total)."`
	CallbackBackoff    time.Duration `split_words:"true" default:"1s" example:"5s" desc:"Wait before a callback report's second try; doubled after each failed try, at most 30s."`

	IdempotencyWindow  time.Duration `split_words:"true" default:"10m" example:"1h0m0s" desc:"How long a push's Idempotency-Key is remembered (across restarts and spool truncation, in SPOOL_DIR/idempotency): a repeat within it returns the original ids without spooling again."`
	IdempotencyMaxKeys int           `split_words:"true" default:"100000" example:"1000000" desc:"Most Idempotency-Keys remembered in memory (on disk: about 1 KiB each, at least 8 MiB); the oldest are evicted first (counted in sluice_idempotency_evicted_total)."`

	RestproxyAck       string `split_words:"true" default:"spooled" enum:"spooled|delivered" example:"delivered" desc:"When the REST Proxy-compatible produce API (POST /topics/..., POST /v3/clusters/.../records) answers: spooled (after the durable local write; offsets are -1) or delivered (after every target sink acknowledged, within SLUICE_ACK_TIMEOUT, with the Kafka partition and offset). A request's Sluice-Ack header overrides it."`
	RestproxyClusterID string `split_words:"true" default:"sluice" example:"lkc-abc123" desc:"Id of the one cluster the REST Proxy v3 API exposes (GET /v3/clusters); records posted under another cluster id get 404. Set it to the id the application already uses to keep its URLs."`

	ListenKafka                string `split_words:"true" example:"127.0.0.1:9092" desc:"Kafka-protocol produce listener, host:port on a loopback address; empty = off. Producers set bootstrap.servers to it; acks come after the local fsync, offsets are local. With SLUICE_AUTH_TOKEN set, producers authenticate with SASL/PLAIN (security.protocol=SASL_PLAINTEXT, sasl.mechanism=PLAIN, any user name, the token as password); no TLS."`
	ListenKafkaPartitions      int    `split_words:"true" default:"0" example:"6" desc:"Partitions the Kafka listener advertises for topics not in SLUICE_LISTEN_KAFKA_TOPIC_PARTITIONS, whose messages then go to the partition the producer chose; 0 = see SLUICE_LISTEN_KAFKA_MIRROR."`
	ListenKafkaTopicPartitions Map    `split_words:"true" example:"clicks=6,orders=12" desc:"Comma list of topic=count: the partition count the Kafka listener advertises per topic (set it to the upstream topic's count); messages go to the partition the producer chose."`
	ListenKafkaMirror          bool   `split_words:"true" default:"true" example:"false" desc:"For topics without a configured count, the Kafka listener advertises the topic's partition count in the upstream Kafka cluster (cached in the spool directory, refreshed every minute); a topic never seen while the cluster is down gets a retriable error. false = one partition, placed by the sink's partitioner."`

	Sinks List `split_words:"true" default:"stdout" example:"main,dr" desc:"Comma list of sink names ([a-z0-9]+, case-insensitive, stored lower-case); sink NAME reads SLUICE_<NAME>_<SETTING>."`

	// SinkConfigs holds one Sink per name in Sinks, in the same order.
	SinkConfigs []Sink `ignored:"true"`
}

// Sink is one named sink: SLUICE_<NAME>_<SETTING>. The settings here are common
// to every type; exactly one of File, Kafka, HTTP, RabbitMQ, AMQP1, SQS and
// NATS is set when Type is that type, and none for stdout and discard.
type Sink struct {
	// Name is the sink's name, lower-case, as listed in SLUICE_SINKS.
	Name string `ignored:"true"`

	Type            string        `split_words:"true" enum:"stdout|file|discard|kafka|http|queue|rabbitmq|amqp1|sqs|nats" doc_default:"<name>" example:"kafka" desc:"Sink type; defaults to the sink's name (SLUICE_SINKS=kafka alone gives a kafka sink)."`
	Topics          List          `split_words:"true" default:"*" example:"orders,audit.*" desc:"Comma list of topic globs (Go path.Match syntax) routed to this sink; a message goes to every sink that matches."`
	MaxBacklogBytes Bytes         `split_words:"true" default:"0" example:"256MiB" desc:"Cap on this sink's undelivered bytes in the spool, so a dead sink hits its own limit first; 0 = only the spool cap."`
	BacklogPolicy   string        `split_words:"true" default:"reject" enum:"reject|drop_oldest" example:"drop_oldest" desc:"At the backlog cap: reject pushes routed here (503) or drop this sink's oldest messages (counted)."`
	MaxAge          time.Duration `split_words:"true" default:"0" example:"24h0m0s" desc:"Messages older than this are dead-lettered with reason expired; 0 = off."`
	BatchMessages   int           `split_words:"true" default:"1000" example:"500" desc:"Most messages per upstream batch."`
	BatchBytes      Bytes         `split_words:"true" default:"1MiB" example:"4MiB" desc:"Most bytes per upstream batch."`
	Linger          time.Duration `split_words:"true" default:"5ms" example:"20ms" desc:"How long a partial batch waits for more messages."`
	RetryMin        time.Duration `split_words:"true" default:"100ms" example:"250ms" desc:"First retry backoff (exponential, with jitter)."`
	RetryMax        time.Duration `split_words:"true" default:"30s" example:"1m0s" desc:"Retry backoff cap. At least RETRY_MIN."`

	File     *FileSink     `ignored:"true"`
	Kafka    *KafkaSink    `ignored:"true"`
	HTTP     *HTTPSink     `ignored:"true"`
	Queue    *QueueSink    `ignored:"true"`
	RabbitMQ *RabbitMQSink `ignored:"true"`
	AMQP1    *AMQP1Sink    `ignored:"true"`
	SQS      *SQSSink      `ignored:"true"`
	NATS     *NATSSink     `ignored:"true"`
}

// FileSink holds the settings of a sink of type file.
type FileSink struct {
	Path        string        `split_words:"true" required:"true" example:"/var/log/sluice" desc:"Directory the sink writes its files into."`
	RotateBytes Bytes         `split_words:"true" default:"64MiB" example:"256MiB" desc:"Start a new file after this many bytes."`
	RotateAge   time.Duration `split_words:"true" default:"1h" example:"24h0m0s" desc:"Start a new file after this long; 0 = by size only."`
}

// KafkaSink holds the settings of a sink of type kafka.
type KafkaSink struct {
	Brokers           List          `split_words:"true" required:"true" example:"b1:9092,b2:9092" desc:"Comma list of bootstrap brokers, host:port."`
	ClientID          string        `split_words:"true" default:"sluice" example:"orders-api" desc:"Client id sent to the brokers."`
	Acks              string        `split_words:"true" default:"all" enum:"all|one|none" example:"all" desc:"Acknowledgement a produce waits for; at-least-once delivery needs all."`
	Compression       string        `split_words:"true" default:"none" enum:"none|gzip|snappy|lz4|zstd" example:"zstd" desc:"Batch compression codec."`
	Partitioner       string        `split_words:"true" default:"murmur2" enum:"murmur2|hash|round_robin|least_bytes" example:"hash" desc:"How keys map to partitions: murmur2 agrees with the Java client's default, so sluice and other producers pick the same partition; hash is FNV-1a (kafka-go's Hash); round_robin and least_bytes ignore keys."`
	WriteTimeout      time.Duration `split_words:"true" default:"10s" example:"30s" desc:"Bound on one produce request."`
	DialTimeout       time.Duration `split_words:"true" default:"5s" example:"10s" desc:"Bound on connecting to a broker."`
	MaxMessageBytes   Bytes         `split_words:"true" default:"1MiB" example:"4MiB" desc:"Largest record sent upstream; keep it at or below the topics' max.message.bytes."`
	TopicPrefix       string        `split_words:"true" example:"prod." desc:"Prepended to every topic name upstream (after TOPIC_MAP)."`
	TopicMap          Map           `split_words:"true" example:"clicks=web-clicks,orders=orders-v2" desc:"Comma list of from=to topic renames applied upstream."`
	UnknownTopicGrace time.Duration `split_words:"true" default:"5m" example:"1m0s" desc:"How long a topic the cluster does not know is retried (it may be being created) before its messages are dead-lettered."`
	TLS               bool          `split_words:"true" default:"false" example:"true" desc:"Connect to the brokers with TLS."`
	// TLSCaFile is spelled so that split_words gives TLS_CA_FILE (TLSCAFile
	// would give TLSCA_FILE).
	TLSCaFile             string `split_words:"true" example:"/etc/sluice/kafka-ca.pem" desc:"PEM CA bundle that verifies the brokers; empty = system roots."`
	TLSCertFile           string `split_words:"true" example:"/etc/sluice/kafka-client.pem" desc:"PEM client certificate for mutual TLS (with TLS_KEY_FILE)."`
	TLSKeyFile            string `split_words:"true" example:"/etc/sluice/kafka-client-key.pem" desc:"PEM private key of TLS_CERT_FILE."`
	TLSServerName         string `split_words:"true" example:"kafka.internal" desc:"Name verified in the brokers' certificates instead of the dialled host."`
	TLSInsecureSkipVerify bool   `split_words:"true" default:"false" example:"true" desc:"Skip verifying the brokers' certificates (testing only)."`
	SASLMechanism         string `split_words:"true" enum:"|plain|scram-sha-256|scram-sha-512" example:"scram-sha-512" desc:"SASL mechanism; empty = no SASL."`
	SASLUsername          string `split_words:"true" example:"sluice" desc:"SASL user name (required with SASL_MECHANISM)."`
	SASLPassword          string `split_words:"true" secret:"true" example:"change-me" desc:"SASL password; SASL_MECHANISM needs it or SASL_PASSWORD_FILE, not both."`
	SASLPasswordFile      string `split_words:"true" example:"/etc/sluice/kafka-password" desc:"File whose content is the SASL password (a trailing newline is not part of it)."`
	DeadletterTopic       string `split_words:"true" example:"sluice-deadletter" desc:"Topic this sink's dead letters are also sent to (best effort, 3 tries), with headers sluice-deadletter-reason, sluice-deadletter-error and sluice-original-topic; empty = local dead-letter log only."`
}

// HTTPSink holds the settings of a sink of type http. Batches are POSTed in
// the JSON format of POST /v1/messages.
type HTTPSink struct {
	URL       string        `split_words:"true" required:"true" secret:"userinfo" example:"https://collector.example.com/v1/messages" desc:"Endpoint the batches are POSTed to (http or https)."`
	Token     string        `split_words:"true" secret:"true" example:"change-me" desc:"Sent as Authorization: Bearer <token>; exclusive with TOKEN_FILE."`
	TokenFile string        `split_words:"true" example:"/etc/sluice/http-token" desc:"File whose content is the token (a trailing newline is not part of it)."`
	Headers   Map           `split_words:"true" secret:"true" example:"X-Env=prod,X-Tenant=acme" desc:"Extra request headers, comma list of Name=value."`
	Gzip      bool          `split_words:"true" default:"false" example:"true" desc:"Gzip request bodies."`
	Timeout   time.Duration `split_words:"true" default:"10s" example:"30s" desc:"Bound on one request."`
}

// QueueSink holds the settings of a sink of type queue: a local work queue
// that consumers pull from the ingest listener (POST /v1/queues/<name>/pull).
type QueueSink struct {
	Visibility  time.Duration `split_words:"true" default:"30s" example:"5m0s" desc:"Default lease of a pulled message (1s to 12h): unacknowledged after it, the message is handed out again. A pull may ask for its own."`
	MaxAttempts int           `split_words:"true" default:"5" example:"10" desc:"Deliveries of one message before it is dead-lettered with reason max_attempts instead of handed out again; 0 = unlimited."`
	Ordered     bool          `split_words:"true" default:"false" example:"true" desc:"Per-key ordering: while a message of a key is leased, no later message of that key is handed out (messages without a key are not ordered)."`
}

// envPrefix is the prefix of every variable the agent reads.
const envPrefix = "SLUICE"

// Load reads the configuration from the process environment, validates it and
// checks that every SLUICE_* variable is one the agent knows. The error, if
// any, has one line per problem, each naming its variable.
//
// A variable that is set but empty counts as unset: Load removes empty
// SLUICE_* variables from the process environment (os.Unsetenv) before it
// reads it, so the defaults apply. Load is meant to be called once, by cmd at
// start-up, before other goroutines read the environment.
func Load() (*Config, error) {
	unsetEmpty()
	return load(os.Environ())
}
