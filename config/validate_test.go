package config

import (
	"strings"
	"testing"
)

func TestValidationErrorsNameTheirVariable(t *testing.T) {
	kafka := map[string]string{"SLUICE_SINKS": "main", "SLUICE_MAIN_TYPE": "kafka", "SLUICE_MAIN_BROKERS": "b1:9092"}
	file := map[string]string{"SLUICE_SINKS": "out", "SLUICE_OUT_TYPE": "file", "SLUICE_OUT_PATH": "/var/log/sluice"}
	web := map[string]string{"SLUICE_SINKS": "web", "SLUICE_WEB_TYPE": "http", "SLUICE_WEB_URL": "https://c.example.com/in"}
	rmq := map[string]string{"SLUICE_SINKS": "mq", "SLUICE_MQ_TYPE": "rabbitmq", "SLUICE_MQ_URL": "amqp://u:p@mq.internal:5672/prod"}
	amq := map[string]string{"SLUICE_SINKS": "mq", "SLUICE_MQ_TYPE": "amqp1", "SLUICE_MQ_URL": "amqp://sluice:pw@broker:5672"}
	q := map[string]string{"SLUICE_SINKS": "q", "SLUICE_Q_TYPE": "sqs", "SLUICE_Q_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"}
	js := map[string]string{"SLUICE_SINKS": "js", "SLUICE_JS_TYPE": "nats", "SLUICE_JS_URL": "nats://n1:4222"}
	with := func(base map[string]string, kv ...string) map[string]string {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return env
	}
	tests := []struct {
		name    string
		env     map[string]string
		varName string
		want    string // part of the message
	}{
		{"sync enum", with(nil, "SLUICE_SPOOL_SYNC", "sometimes"), "SLUICE_SPOOL_SYNC", `must be one of always|interval|never, got "sometimes"`},
		{"full policy", with(nil, "SLUICE_SPOOL_FULL_POLICY", "block"), "SLUICE_SPOOL_FULL_POLICY", "reject|drop_oldest"},
		{"log level", with(nil, "SLUICE_LOG_LEVEL", "verbose"), "SLUICE_LOG_LEVEL", "debug|info|warn|error"},
		{"log format", with(nil, "SLUICE_LOG_FORMAT", "xml"), "SLUICE_LOG_FORMAT", "json|text"},
		{"listen garbage", with(nil, "SLUICE_LISTEN", "localhost"), "SLUICE_LISTEN", "host:port"},
		{"listen port", with(nil, "SLUICE_LISTEN", "127.0.0.1:99999"), "SLUICE_LISTEN", "65535"},
		{"listen port zero", with(nil, "SLUICE_LISTEN", "127.0.0.1:0"), "SLUICE_LISTEN", "65535"},
		{"listen relative unix", with(nil, "SLUICE_LISTEN", "unix:sluice.sock"), "SLUICE_LISTEN", "absolute"},
		{"listen long unix", with(nil, "SLUICE_LISTEN", "unix:/"+strings.Repeat("x", 120)), "SLUICE_LISTEN", "limit"},
		{"listen bad host", with(nil, "SLUICE_LISTEN", "bad host:7101"), "SLUICE_LISTEN", "host name"},
		{"kafka listen not loopback", with(nil, "SLUICE_LISTEN_KAFKA", "0.0.0.0:9092"), "SLUICE_LISTEN_KAFKA", "loopback"},
		{"kafka listen no host", with(nil, "SLUICE_LISTEN_KAFKA", ":9092"), "SLUICE_LISTEN_KAFKA", "needs a host"},
		{"kafka partitions negative", with(nil, "SLUICE_LISTEN_KAFKA_PARTITIONS", "-1"), "SLUICE_LISTEN_KAFKA_PARTITIONS", "from 0"},
		{"kafka topic partitions", with(nil, "SLUICE_LISTEN_KAFKA_TOPIC_PARTITIONS", "orders=many"), "SLUICE_LISTEN_KAFKA_TOPIC_PARTITIONS", "orders"},
		{"kafka topic partitions topic", with(nil, "SLUICE_LISTEN_KAFKA_TOPIC_PARTITIONS", "a b=3"), "SLUICE_LISTEN_KAFKA_TOPIC_PARTITIONS", "topic name"},
		{"listen all interfaces without token", with(nil, "SLUICE_LISTEN", ":7101"), "SLUICE_LISTEN", "SLUICE_AUTH_TOKEN is empty"},
		{"listen pod IP without token", with(nil, "SLUICE_LISTEN", "10.1.2.3:7101"), "SLUICE_LISTEN", "SLUICE_ALLOW_UNAUTHENTICATED=true"},
		{"listen host name without token", with(nil, "SLUICE_LISTEN", "sluice.example.com:7101"), "SLUICE_LISTEN", "SLUICE_AUTH_TOKEN"},
		{"listen 0.0.0.0, opt-out not true", with(nil, "SLUICE_LISTEN", "0.0.0.0:7101", "SLUICE_ALLOW_UNAUTHENTICATED", "false"), "SLUICE_LISTEN", "SLUICE_ALLOW_UNAUTHENTICATED=true"},
		{"admin listen", with(nil, "SLUICE_ADMIN_LISTEN", "7103"), "SLUICE_ADMIN_LISTEN", "host:port"},
		{"admin listen blank", with(nil, "SLUICE_ADMIN_LISTEN", " "), "SLUICE_ADMIN_LISTEN", "host:port"},
		{"bytes garbage", with(nil, "SLUICE_SPOOL_MAX_BYTES", "lots"), "SLUICE_SPOOL_MAX_BYTES", `got "lots"`},
		{"bytes negative", with(nil, "SLUICE_MAX_MESSAGE_BYTES", "-1"), "SLUICE_MAX_MESSAGE_BYTES", "negative"},
		{"bytes fraction", with(nil, "SLUICE_DEADLETTER_MAX_BYTES", "1.5GiB"), "SLUICE_DEADLETTER_MAX_BYTES", "whole number"},
		{"segment small", with(nil, "SLUICE_SPOOL_SEGMENT_BYTES", "32KiB"), "SLUICE_SPOOL_SEGMENT_BYTES", "between 64KiB and 64MiB"},
		{"segment large", with(nil, "SLUICE_SPOOL_SEGMENT_BYTES", "128MiB"), "SLUICE_SPOOL_SEGMENT_BYTES", "between 64KiB and 64MiB"},
		{"spool under 4 segments", with(nil, "SLUICE_SPOOL_MAX_BYTES", "3MiB"), "SLUICE_SPOOL_MAX_BYTES", "4 × SLUICE_SPOOL_SEGMENT_BYTES"},
		{"sync interval zero", with(nil, "SLUICE_SPOOL_SYNC_INTERVAL", "0s"), "SLUICE_SPOOL_SYNC_INTERVAL", "greater than 0"},
		{"duration garbage", with(nil, "SLUICE_SPOOL_APPEND_TIMEOUT", "5"), "SLUICE_SPOOL_APPEND_TIMEOUT", "duration"},
		{"duration negative", with(nil, "SLUICE_DRAIN_TIMEOUT", "-1s"), "SLUICE_DRAIN_TIMEOUT", "negative"},
		{"bool garbage", with(nil, "SLUICE_DRAIN_ACCEPT", "yes"), "SLUICE_DRAIN_ACCEPT", "true or false"},
		{"int garbage", with(nil, "SLUICE_MAX_HEADERS", "many"), "SLUICE_MAX_HEADERS", "whole number"},
		{"int zero", with(nil, "SLUICE_MAX_CONNECTIONS", "0"), "SLUICE_MAX_CONNECTIONS", "greater than 0"},
		{"record cache", with(nil, "SLUICE_RECORD_CACHE", "-5"), "SLUICE_RECORD_CACHE", "greater than 0"},
		{"header bytes zero", with(nil, "SLUICE_MAX_HEADER_BYTES", "0"), "SLUICE_MAX_HEADER_BYTES", "greater than 0"},
		{"request below message", with(nil, "SLUICE_MAX_REQUEST_BYTES", "512KiB"), "SLUICE_MAX_REQUEST_BYTES", "SLUICE_MAX_MESSAGE_BYTES"},
		{"inflight below request", with(nil, "SLUICE_MAX_INFLIGHT_BYTES", "8MiB"), "SLUICE_MAX_INFLIGHT_BYTES", "SLUICE_MAX_REQUEST_BYTES"},
		{"deadletter below message", with(nil, "SLUICE_DEADLETTER_MAX_BYTES", "512KiB"), "SLUICE_DEADLETTER_MAX_BYTES", "SLUICE_MAX_MESSAGE_BYTES"},
		{"deadletter equal to message", with(nil, "SLUICE_DEADLETTER_MAX_BYTES", "1MiB"), "SLUICE_DEADLETTER_MAX_BYTES", "must be at least 1082694 bytes (SLUICE_MAX_MESSAGE_BYTES + SLUICE_MAX_HEADER_BYTES"},
		{"deadletter below message + headers", with(nil, "SLUICE_DEADLETTER_MAX_BYTES", "2MiB", "SLUICE_MAX_MESSAGE_BYTES", "2MiB", "SLUICE_MAX_REQUEST_BYTES", "16MiB"), "SLUICE_DEADLETTER_MAX_BYTES", "SLUICE_MAX_HEADER_BYTES"},
		{"sink name too long", with(nil, "SLUICE_SINKS", strings.Repeat("s", 65)), "SLUICE_SINKS", "longer than 64 bytes"},
		{"ack above max", with(nil, "SLUICE_ACK_TIMEOUT", "2m"), "SLUICE_ACK_TIMEOUT_MAX", "SLUICE_ACK_TIMEOUT"},
		{"read timeout zero", with(nil, "SLUICE_READ_TIMEOUT", "0s"), "SLUICE_READ_TIMEOUT", "greater than 0"},
		{"sinks empty", with(nil, "SLUICE_SINKS", " "), "SLUICE_SINKS", "at least one"},
		{"sinks stray comma", with(nil, "SLUICE_SINKS", "stdout,"), "SLUICE_SINKS", "empty"},
		{"sink name syntax", with(nil, "SLUICE_SINKS", "my-sink"), "SLUICE_SINKS", "letters and digits"},
		{"sink name twice", with(nil, "SLUICE_SINKS", "stdout,STDOUT"), "SLUICE_SINKS", "twice"},
		{"type unknown", with(nil, "SLUICE_SINKS", "main", "SLUICE_MAIN_TYPE", "s3"), "SLUICE_MAIN_TYPE", "stdout|file|discard|kafka|http"},
		{"type from bad name", with(nil, "SLUICE_SINKS", "main"), "SLUICE_MAIN_TYPE", `sink name "main" is not a sink type`},
		{"topics empty item", with(nil, "SLUICE_STDOUT_TOPICS", "a,,b"), "SLUICE_STDOUT_TOPICS", "empty"},
		{"topics blank", with(nil, "SLUICE_STDOUT_TOPICS", " "), "SLUICE_STDOUT_TOPICS", "at least one"},
		{"topics bad glob", with(nil, "SLUICE_STDOUT_TOPICS", "orders[,x"), "SLUICE_STDOUT_TOPICS", "bad glob"},
		{"backlog over spool", with(nil, "SLUICE_STDOUT_MAX_BACKLOG_BYTES", "2GiB"), "SLUICE_STDOUT_MAX_BACKLOG_BYTES", "SLUICE_SPOOL_MAX_BYTES"},
		{"backlog policy", with(nil, "SLUICE_STDOUT_BACKLOG_POLICY", "block"), "SLUICE_STDOUT_BACKLOG_POLICY", "reject|drop_oldest"},
		{"max age negative", with(nil, "SLUICE_STDOUT_MAX_AGE", "-1h"), "SLUICE_STDOUT_MAX_AGE", "negative"},
		{"batch messages", with(nil, "SLUICE_STDOUT_BATCH_MESSAGES", "0"), "SLUICE_STDOUT_BATCH_MESSAGES", "greater than 0"},
		{"batch bytes", with(nil, "SLUICE_STDOUT_BATCH_BYTES", "0"), "SLUICE_STDOUT_BATCH_BYTES", "greater than 0"},
		{"retry min zero", with(nil, "SLUICE_STDOUT_RETRY_MIN", "0s"), "SLUICE_STDOUT_RETRY_MIN", "greater than 0"},
		{"retry max below min", with(nil, "SLUICE_STDOUT_RETRY_MIN", "1m", "SLUICE_STDOUT_RETRY_MAX", "1s"), "SLUICE_STDOUT_RETRY_MAX", "SLUICE_STDOUT_RETRY_MIN"},
		{"linger negative", with(nil, "SLUICE_STDOUT_LINGER", "-5ms"), "SLUICE_STDOUT_LINGER", "negative"},
		{"file path missing", with(nil, "SLUICE_SINKS", "out", "SLUICE_OUT_TYPE", "file"), "SLUICE_OUT_PATH", `required for sink "out" (type file)`},
		{"file rotate bytes", with(file, "SLUICE_OUT_ROTATE_BYTES", "0"), "SLUICE_OUT_ROTATE_BYTES", "greater than 0"},
		{"file rotate age", with(file, "SLUICE_OUT_ROTATE_AGE", "-1h"), "SLUICE_OUT_ROTATE_AGE", "negative"},
		{"amqp1 url missing", with(nil, "SLUICE_SINKS", "mq", "SLUICE_MQ_TYPE", "amqp1"), "SLUICE_MQ_URL", `required for sink "mq" (type amqp1)`},
		{"amqp1 url scheme", with(amq, "SLUICE_MQ_URL", "http://u:hidden@broker"), "SLUICE_MQ_URL", "amqp:// or amqps://"},
		{"amqp1 url path", with(amq, "SLUICE_MQ_URL", "amqp://u:hidden@broker/vhost"), "SLUICE_MQ_URL", "SLUICE_MQ_ADDRESS"},
		{"amqp1 url no host", with(amq, "SLUICE_MQ_URL", "amqp://"), "SLUICE_MQ_URL", "no host"},
		{"amqp1 url port", with(amq, "SLUICE_MQ_URL", "amqp://broker:99999"), "SLUICE_MQ_URL", "65535"},
		{"amqp1 url no user", with(amq, "SLUICE_MQ_URL", "amqp://:hidden@broker"), "SLUICE_MQ_URL", "no user name"},
		{"amqp1 address placeholder", with(amq, "SLUICE_MQ_ADDRESS", "q.{partition}"), "SLUICE_MQ_ADDRESS", "{partition}"},
		{"amqp1 address brace", with(amq, "SLUICE_MQ_ADDRESS", "q.{topic"), "SLUICE_MQ_ADDRESS", "unmatched"},
		{"amqp1 capabilities none", with(amq, "SLUICE_MQ_TARGET_CAPABILITIES", "none,queue"), "SLUICE_MQ_TARGET_CAPABILITIES", "none"},
		{"amqp1 in flight", with(amq, "SLUICE_MQ_MAX_IN_FLIGHT", "0"), "SLUICE_MQ_MAX_IN_FLIGHT", "greater than 0"},
		{"amqp1 write timeout", with(amq, "SLUICE_MQ_WRITE_TIMEOUT", "0s"), "SLUICE_MQ_WRITE_TIMEOUT", "greater than 0"},
		{"amqp1 ca without amqps", with(amq, "SLUICE_MQ_TLS_CA_FILE", "/ca.pem"), "SLUICE_MQ_TLS_CA_FILE", "amqps://"},
		{"amqp1 grace negative", with(amq, "SLUICE_MQ_UNKNOWN_ADDRESS_GRACE", "-1s"), "SLUICE_MQ_UNKNOWN_ADDRESS_GRACE", "negative"},
		{"brokers missing", with(nil, "SLUICE_SINKS", "kafka"), "SLUICE_KAFKA_BROKERS", `required for sink "kafka" (type kafka)`},
		{"brokers no port", with(kafka, "SLUICE_MAIN_BROKERS", "b1"), "SLUICE_MAIN_BROKERS", `broker "b1"`},
		{"brokers no host", with(kafka, "SLUICE_MAIN_BROKERS", "b1:9092,:9092"), "SLUICE_MAIN_BROKERS", "needs a host"},
		{"brokers empty item", with(kafka, "SLUICE_MAIN_BROKERS", "b1:9092,,b2:9092"), "SLUICE_MAIN_BROKERS", "empty"},
		{"client id blank", with(kafka, "SLUICE_MAIN_CLIENT_ID", " "), "SLUICE_MAIN_CLIENT_ID", "blank"},
		{"acks", with(kafka, "SLUICE_MAIN_ACKS", "-1"), "SLUICE_MAIN_ACKS", "all|one|none"},
		{"compression", with(kafka, "SLUICE_MAIN_COMPRESSION", "brotli"), "SLUICE_MAIN_COMPRESSION", "none|gzip|snappy|lz4|zstd"},
		{"partitioner", with(kafka, "SLUICE_MAIN_PARTITIONER", "crc32"), "SLUICE_MAIN_PARTITIONER", "murmur2|hash|round_robin|least_bytes"},
		{"kafka write timeout", with(kafka, "SLUICE_MAIN_WRITE_TIMEOUT", "0s"), "SLUICE_MAIN_WRITE_TIMEOUT", "greater than 0"},
		{"kafka dial timeout", with(kafka, "SLUICE_MAIN_DIAL_TIMEOUT", "0s"), "SLUICE_MAIN_DIAL_TIMEOUT", "greater than 0"},
		{"kafka max message", with(kafka, "SLUICE_MAIN_MAX_MESSAGE_BYTES", "0"), "SLUICE_MAIN_MAX_MESSAGE_BYTES", "greater than 0"},
		{"topic prefix", with(kafka, "SLUICE_MAIN_TOPIC_PREFIX", "prod/"), "SLUICE_MAIN_TOPIC_PREFIX", "letters, digits"},
		{"topic map syntax", with(kafka, "SLUICE_MAIN_TOPIC_MAP", "orders"), "SLUICE_MAIN_TOPIC_MAP", "key=value"},
		{"deadletter topic", with(kafka, "SLUICE_MAIN_DEADLETTER_TOPIC", "dead letters"), "SLUICE_MAIN_DEADLETTER_TOPIC", "letters, digits"},
		{"topic map target", with(kafka, "SLUICE_MAIN_TOPIC_MAP", "orders=bad topic"), "SLUICE_MAIN_TOPIC_MAP", "orders=bad topic"},
		{"topic map empty target", with(kafka, "SLUICE_MAIN_TOPIC_MAP", "orders="), "SLUICE_MAIN_TOPIC_MAP", "empty topic"},
		{"topic map twice", with(kafka, "SLUICE_MAIN_TOPIC_MAP", "a=b,a=c"), "SLUICE_MAIN_TOPIC_MAP", "twice"},
		{"grace negative", with(kafka, "SLUICE_MAIN_UNKNOWN_TOPIC_GRACE", "-1m"), "SLUICE_MAIN_UNKNOWN_TOPIC_GRACE", "negative"},
		{"tls file without tls", with(kafka, "SLUICE_MAIN_TLS_CA_FILE", "/ca.pem"), "SLUICE_MAIN_TLS_CA_FILE", "SLUICE_MAIN_TLS is false"},
		{"skip verify without tls", with(kafka, "SLUICE_MAIN_TLS_INSECURE_SKIP_VERIFY", "true"), "SLUICE_MAIN_TLS_INSECURE_SKIP_VERIFY", "SLUICE_MAIN_TLS is false"},
		{"cert without key", with(kafka, "SLUICE_MAIN_TLS", "true", "SLUICE_MAIN_TLS_CERT_FILE", "/c.pem"), "SLUICE_MAIN_TLS_KEY_FILE", "required with SLUICE_MAIN_TLS_CERT_FILE"},
		{"key without cert", with(kafka, "SLUICE_MAIN_TLS", "true", "SLUICE_MAIN_TLS_KEY_FILE", "/k.pem"), "SLUICE_MAIN_TLS_CERT_FILE", "required with SLUICE_MAIN_TLS_KEY_FILE"},
		{"sasl mechanism", with(kafka, "SLUICE_MAIN_SASL_MECHANISM", "gssapi"), "SLUICE_MAIN_SASL_MECHANISM", "empty or one of plain|scram-sha-256|scram-sha-512"},
		{"sasl user without mechanism", with(kafka, "SLUICE_MAIN_SASL_USERNAME", "u"), "SLUICE_MAIN_SASL_USERNAME", "SLUICE_MAIN_SASL_MECHANISM is empty"},
		{"sasl no user", with(kafka, "SLUICE_MAIN_SASL_MECHANISM", "plain", "SLUICE_MAIN_SASL_PASSWORD", "p"), "SLUICE_MAIN_SASL_USERNAME", "required"},
		{"sasl no password", with(kafka, "SLUICE_MAIN_SASL_MECHANISM", "plain", "SLUICE_MAIN_SASL_USERNAME", "u"), "SLUICE_MAIN_SASL_PASSWORD", "SLUICE_MAIN_SASL_PASSWORD_FILE"},
		{"sasl both passwords", with(kafka, "SLUICE_MAIN_SASL_MECHANISM", "plain", "SLUICE_MAIN_SASL_USERNAME", "u", "SLUICE_MAIN_SASL_PASSWORD", "p", "SLUICE_MAIN_SASL_PASSWORD_FILE", "/p"), "SLUICE_MAIN_SASL_PASSWORD_FILE", "one of them"},
		{"url missing", with(nil, "SLUICE_SINKS", "http"), "SLUICE_HTTP_URL", `required for sink "http" (type http)`},
		{"url scheme", with(web, "SLUICE_WEB_URL", "ftp://c.example.com/"), "SLUICE_WEB_URL", "http:// or https://"},
		{"url no host", with(web, "SLUICE_WEB_URL", "https:///in"), "SLUICE_WEB_URL", "no host"},
		{"url unparsable", with(web, "SLUICE_WEB_URL", "https://c.example.com:port/"), "SLUICE_WEB_URL", "not a URL"},
		{"token and file", with(web, "SLUICE_WEB_TOKEN", "t", "SLUICE_WEB_TOKEN_FILE", "/t"), "SLUICE_WEB_TOKEN_FILE", "one of them"},
		{"header name", with(web, "SLUICE_WEB_HEADERS", "X Bad=1"), "SLUICE_WEB_HEADERS", "header name"},
		{"headers syntax", with(web, "SLUICE_WEB_HEADERS", "X-Good"), "SLUICE_WEB_HEADERS", "Name=value"},
		{"gzip", with(web, "SLUICE_WEB_GZIP", "maybe"), "SLUICE_WEB_GZIP", "true or false"},
		{"http timeout", with(web, "SLUICE_WEB_TIMEOUT", "0s"), "SLUICE_WEB_TIMEOUT", "greater than 0"},
		{"rabbitmq url missing", with(nil, "SLUICE_SINKS", "rabbitmq"), "SLUICE_RABBITMQ_URL", `required for sink "rabbitmq" (type rabbitmq)`},
		{"rabbitmq url scheme", with(rmq, "SLUICE_MQ_URL", "http://u:p@mq.internal/"), "SLUICE_MQ_URL", "amqp:// or amqps://"},
		{"rabbitmq url no host", with(rmq, "SLUICE_MQ_URL", "amqp:///prod"), "SLUICE_MQ_URL", "no host"},
		{"rabbitmq url port", with(rmq, "SLUICE_MQ_URL", "amqp://mq.internal:99999/"), "SLUICE_MQ_URL", "1 to 65535"},
		{"rabbitmq vhost", with(rmq, "SLUICE_MQ_URL", "amqp://mq.internal/a/b"), "SLUICE_MQ_URL", "%2F"},
		{"rabbitmq exchange template", with(rmq, "SLUICE_MQ_EXCHANGE", "ev.{partition}"), "SLUICE_MQ_EXCHANGE", "unknown placeholder {partition}"},
		{"rabbitmq routing key template", with(rmq, "SLUICE_MQ_ROUTING_KEY", "{topic"), "SLUICE_MQ_ROUTING_KEY", "unmatched"},
		{"rabbitmq tls without amqps", with(rmq, "SLUICE_MQ_TLS_CA_FILE", "/ca.pem"), "SLUICE_MQ_TLS_CA_FILE", "not an amqps:// URL"},
		{"rabbitmq cert without key", with(rmq, "SLUICE_MQ_URL", "amqps://mq.internal/", "SLUICE_MQ_TLS_CERT_FILE", "/c.pem"), "SLUICE_MQ_TLS_KEY_FILE", "required with SLUICE_MQ_TLS_CERT_FILE"},
		{"rabbitmq write timeout", with(rmq, "SLUICE_MQ_WRITE_TIMEOUT", "0s"), "SLUICE_MQ_WRITE_TIMEOUT", "greater than 0"},
		{"rabbitmq grace", with(rmq, "SLUICE_MQ_UNROUTABLE_GRACE", "-1s"), "SLUICE_MQ_UNROUTABLE_GRACE", "negative"},
		{"sqs url missing", with(nil, "SLUICE_SINKS", "sqs"), "SLUICE_SQS_URL", `required for sink "sqs" (type sqs)`},
		{"sqs url scheme", with(q, "SLUICE_Q_URL", "sqs://x/1/q"), "SLUICE_Q_URL", "https://"},
		{"sqs url path", with(q, "SLUICE_Q_URL", "https://sqs.eu-west-1.amazonaws.com/orders"), "SLUICE_Q_URL", "/<account>/<queue name>"},
		{"sqs queue name", with(q, "SLUICE_Q_URL", "https://sqs.eu-west-1.amazonaws.com/1/a%20b"), "SLUICE_Q_URL", "not valid for SQS"},
		{"sqs endpoint", with(q, "SLUICE_Q_ENDPOINT", "localhost:9324"), "SLUICE_Q_ENDPOINT", "http:// or https://"},
		{"sqs region", with(q, "SLUICE_Q_REGION", "EU West"), "SLUICE_Q_REGION", "eu-west-1"},
		{"sqs request bytes", with(q, "SLUICE_Q_REQUEST_BYTES", "2MiB"), "SLUICE_Q_REQUEST_BYTES", "between 1KiB and 1MiB"},
		{"sqs in flight", with(q, "SLUICE_Q_MAX_IN_FLIGHT", "0"), "SLUICE_Q_MAX_IN_FLIGHT", "greater than 0"},
		{"sqs group", with(q, "SLUICE_Q_GROUP_ID", "a b"), "SLUICE_Q_GROUP_ID", "ASCII punctuation"},
		{"sqs setting on http", with(web, "SLUICE_WEB_REGION", "eu-west-1"), "SLUICE_WEB_REGION", ""},
		{"nats url missing", with(nil, "SLUICE_SINKS", "nats"), "SLUICE_NATS_URL", "required"},
		{"nats url scheme", with(js, "SLUICE_JS_URL", "http://n1:4222"), "SLUICE_JS_URL", "nats://host:port or tls://host:port"},
		{"nats url in list", with(js, "SLUICE_JS_URL", "nats://n1:4222,n2:4222"), "SLUICE_JS_URL", "nats://host:port"},
		{"nats url no host", with(js, "SLUICE_JS_URL", "nats://"), "SLUICE_JS_URL", "no host"},
		{"nats subject placeholder", with(js, "SLUICE_JS_SUBJECT", "a.{partition}"), "SLUICE_JS_SUBJECT", "use {topic} or {key}"},
		{"nats subject empty token", with(js, "SLUICE_JS_SUBJECT", "events..{topic}"), "SLUICE_JS_SUBJECT", "empty token"},
		{"nats subject wildcard", with(js, "SLUICE_JS_SUBJECT", "events.>"), "SLUICE_JS_SUBJECT", "wildcard"},
		{"nats subject space", with(js, "SLUICE_JS_SUBJECT", "my events.{topic}"), "SLUICE_JS_SUBJECT", "whitespace"},
		{"nats ack timeout", with(js, "SLUICE_JS_ACK_TIMEOUT", "0s"), "SLUICE_JS_ACK_TIMEOUT", "greater than 0"},
		{"nats max pending", with(js, "SLUICE_JS_MAX_PENDING", "0"), "SLUICE_JS_MAX_PENDING", "greater than 0"},
		{"nats connect timeout", with(js, "SLUICE_JS_CONNECT_TIMEOUT", "0s"), "SLUICE_JS_CONNECT_TIMEOUT", "greater than 0"},
		{"nats reconnect wait", with(js, "SLUICE_JS_RECONNECT_WAIT", "0s"), "SLUICE_JS_RECONNECT_WAIT", "greater than 0"},
		{"nats grace negative", with(js, "SLUICE_JS_NO_STREAM_GRACE", "-1m"), "SLUICE_JS_NO_STREAM_GRACE", "negative"},
		{"nats creds and nkey", with(js, "SLUICE_JS_CREDS_FILE", "/a", "SLUICE_JS_NKEY_FILE", "/b"), "SLUICE_JS_NKEY_FILE", "one of them"},
		{"nats cert without key", with(js, "SLUICE_JS_TLS_CERT_FILE", "/c"), "SLUICE_JS_TLS_KEY_FILE", "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := loadErr(t, tt.env)
			if l := lineFor(t, lines, tt.varName); !strings.Contains(l, tt.want) {
				t.Errorf("error line %q does not contain %q", l, tt.want)
			}
			for _, l := range lines {
				if strings.Contains(l, "u:p@") {
					t.Errorf("error line %q shows the credentials", l)
				}
			}
			for _, l := range lines {
				if !strings.HasPrefix(l, "SLUICE_") {
					t.Errorf("error line %q does not start with a variable name", l)
				}
				if strings.Contains(l, "hidden") {
					t.Errorf("error line %q shows a password", l)
				}
			}
		})
	}
}

// A non-loopback ingest listener needs SLUICE_AUTH_TOKEN or the explicit
// opt-out; loopback addresses and unix sockets need neither. (Before, every
// listener started without a token.)
func TestNonLoopbackListenNeedsTokenOrOptOut(t *testing.T) {
	for _, env := range []map[string]string{
		{"SLUICE_LISTEN": "127.0.0.1:7101"},
		{"SLUICE_LISTEN": "[::1]:7101"},
		{"SLUICE_LISTEN": "localhost:7101"},
		{"SLUICE_LISTEN": "127.0.0.2:7101"},
		{"SLUICE_LISTEN": "unix:/run/sluice/sluice.sock"},
		{"SLUICE_LISTEN": ":7101", "SLUICE_AUTH_TOKEN": "t"},
		{"SLUICE_LISTEN": "0.0.0.0:7101", "SLUICE_ALLOW_UNAUTHENTICATED": "true"},
	} {
		if c := mustLoad(t, env); c.Listen != env["SLUICE_LISTEN"] {
			t.Errorf("%v: listen %q", env, c.Listen)
		}
	}
}

func TestEveryErrorIsReportedOnce(t *testing.T) {
	lines := loadErr(t, map[string]string{
		"SLUICE_SPOOL_SYNC":      "sometimes",
		"SLUICE_SPOOL_MAX_BYTES": "lots",
		"SLUICE_ACK_TIMEOUT_MAX": "soon", // unreadable: no second error about ACK_TIMEOUT ≤ ACK_TIMEOUT_MAX
		"SLUICE_SPOL_DIR":        "/tmp",
		"SLUICE_SINKS":           "main",
		"SLUICE_MAIN_TYPE":       "kafka",
		"SLUICE_MAIN_RETRY_MIN":  "-1s",
	})
	want := []string{"SLUICE_SPOOL_SYNC", "SLUICE_SPOOL_MAX_BYTES", "SLUICE_ACK_TIMEOUT_MAX", "SLUICE_SPOL_DIR", "SLUICE_MAIN_BROKERS", "SLUICE_MAIN_RETRY_MIN"}
	if len(lines) != len(want) {
		t.Errorf("got %d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for _, name := range want {
		lineFor(t, lines, name)
	}
}

func TestReservedSinkNamesAreRefused(t *testing.T) {
	for _, name := range []string{
		"listen", "admin", "auth", "spool", "deadletter", "drain", "log", "max", "ack", "read",
		"write", "idle", "record", "sinks", "callback", "idempotency", "restproxy", "type",
	} {
		t.Run(name, func(t *testing.T) {
			lines := loadErr(t, map[string]string{"SLUICE_SINKS": "stdout," + strings.ToUpper(name)})
			if l := lineFor(t, lines, "SLUICE_SINKS"); !strings.Contains(l, "reserved") || !strings.Contains(l, `"`+strings.ToUpper(name)+`"`) {
				t.Errorf("got %q", l)
			}
		})
	}
}
