// Package kafka is sluice's Kafka sink, built on segmentio/kafka-go: one
// kafka-go Writer and one Transport per sink. It makes exactly one attempt
// per Write (kafka-go MaxAttempts 1) and classifies every failure, so that
// the forwarder can retry, split or dead-letter; the forwarder owns
// batching, per-topic lanes, backoff and splitting.
//
// # Usage
//
//	tlsCfg, err := kafka.TLSConfig("/etc/kafka/ca.pem", "", "", "", false)
//	...
//	w, err := kafka.New(kafka.Options{
//		Name:    "main",
//		Brokers: []string{"b1:9093", "b2:9093"},
//		TLS:     tlsCfg,
//		SASL:    kafka.SASL{Mechanism: "scram-sha-512", Username: "sluice", Password: pw},
//		Metrics: set,
//		Logger:  logger,
//	})
//	...
//	err = w.Write(ctx, batch) // see "Errors" below
//	...
//	err = w.Close(drainCtx)
//
// # What is sent
//
// Each message becomes one record: its key (nil = no key; an empty key is
// a key), its value (nil = a null value, a tombstone on compacted topics),
// its headers in order, the record timestamp = push time (Message.Time,
// millisecond precision) and the header sluice-id = Message.ID, unless the
// message already carries a sluice-id header (chained agents keep the first
// id). The Kafka topic is Options.TopicMap applied to the sluice topic, then
// Options.TopicPrefix prepended. Topics are never auto-created.
//
// A message with an explicit Partition goes there; others go where
// Options.Partitioner says (default murmur2, the Java client's, which
// librdkafka calls murmur2_random: the same key lands on the same partition
// as with those clients). Messages with the same key reach their partition
// in Write order. The messages of one Write for one partition go out in one
// produce request when they fit Options.BatchMessages and
// Options.MaxMessageBytes; otherwise in several, one after the other, and
// after a failed request the later ones of that partition are not sent (so
// a retry cannot reorder the partition).
//
// With acks "all" (the default) a nil Write means every message is on all
// in-sync replicas, and Message.Delivered, DeliveredPart and DeliveredOffset
// are set from kafka-go's Completion callback, which kafka-go runs for
// synchronous writes too, before WriteMessages returns, with the partition
// and the offset (the produce response's base offset plus the position in
// the batch). With acks "none" there is no response and no delivery report.
//
// # Errors
//
// Write returns one of:
//
//   - nil: all delivered.
//   - a plain error: nothing delivered, retry the whole batch. Its
//     sink.Reason says why.
//   - *sink.BatchError: per message; nil = delivered, sink.Permanent = about
//     that message alone (dead-letter it), other = retry it.
//   - sink.Permanent(err): a produce request with several messages was
//     rejected for its records (kafka-go fails a whole partition batch for
//     one bad record and does not say which): split the batch and retry the
//     halves. Some messages of the batch may have been delivered already
//     (at-least-once; consumers de-duplicate by sluice-id).
//
// Classes and reasons:
//
//	cause                                                     class                    reason
//	connection refused/reset/aborted, EOF or unexpected EOF    transient                network
//	  (stale pooled connection after a broker restart),
//	  broken pipe, DNS failure, NETWORK_EXCEPTION
//	dial/read/write deadline, WriteTimeout, REQUEST_TIMED_OUT  transient                timeout
//	caller's context cancelled                                 transient                canceled
//	Writer closed                                              transient                closed
//	TLS handshake or certificate failure, a TLS alert from     transient                tls
//	  the broker (client certificate missing or rejected)
//	SASL_AUTHENTICATION_FAILED, broker closing the connection  transient                auth
//	  during SASL, client-side SCRAM failure,
//	  UNSUPPORTED_SASL_MECHANISM, ILLEGAL_SASL_STATE,
//	  TOPIC_/CLUSTER_/BROKER_AUTHORIZATION_FAILED
//	LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER,              transient                leader
//	  BROKER_/REPLICA_NOT_AVAILABLE, NOT_CONTROLLER,
//	  FENCED_/UNKNOWN_LEADER_EPOCH, no leader in metadata
//	NOT_ENOUGH_REPLICAS(_AFTER_APPEND)                         transient                replicas
//	THROTTLING_QUOTA_EXCEEDED                                  transient                throttled
//	UNSUPPORTED_COMPRESSION_TYPE, UNSUPPORTED_VERSION,         transient                unsupported
//	  INVALID_REQUIRED_ACKS, UNSUPPORTED_FOR_MESSAGE_FORMAT,
//	  INVALID_REQUEST, POLICY_VIOLATION (a configuration or
//	  broker problem: every message would fail alike)
//	any other broker code (KAFKA_STORAGE_ERROR,                transient                broker
//	  UNKNOWN_SERVER_ERROR, ...)
//	anything not recognised                                    transient                other
//	UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_TOPIC_ID               transient for            unknown_topic
//	                                                           UnknownTopicGrace, then
//	                                                           Permanent per message
//	topic name Kafka rejects (checked before sending),         Permanent per message    invalid_topic
//	  INVALID_TOPIC_EXCEPTION
//	explicit partition the topic does not have (after one      Permanent per message    invalid_partition
//	  uncached partition count lookup: recheck.go)
//	message over MaxMessageBytes (checked before sending)      Permanent per message    too_large
//	MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE                   request of 1 message:    too_large
//	                                                           Permanent per message;
//	                                                           of several: Permanent
//	                                                           whole batch (split)
//	INVALID_RECORD, INVALID_MESSAGE_SIZE                       as MESSAGE_TOO_LARGE     invalid_record
//	CORRUPT_MESSAGE (a wire CRC error is possible)             transient for the first  corrupt
//	                                                           CorruptRetries failures
//	                                                           of a message, then as
//	                                                           MESSAGE_TOO_LARGE
//	INVALID_TIMESTAMP                                          as MESSAGE_TOO_LARGE     invalid_timestamp
//
// Authentication and authorization failures are transient on purpose: a bad
// credential rotation must not dead-letter the backlog; the
// sluice_sink_auth_failing gauge alerts instead. The unknown-topic grace
// runs from the first time this Writer saw the topic unknown and is reset
// by a delivery to it. Before turning permanent, the Writer asks the
// cluster about the topic by name: the metadata kafka-go caches lists only
// topics the principal may describe, and a topic hidden by ACLs answers
// TOPIC_AUTHORIZATION_FAILED when named (then: transient, auth).
//
// After network, timeout, TLS, authentication, leader and unknown-topic
// errors the Writer drops kafka-go's cached metadata and idle connections,
// so the forwarder's retry starts on fresh ones (a broker restart leaves
// stale pooled connections whose first write fails with EOF).
//
// The size check uses the uncompressed size of a one-record batch, which is
// what the broker compares with max.message.bytes for an uncompressed
// topic; with compression a message near the limit may be rejected here
// although it would have fit compressed (librdkafka and the Java client
// check the uncompressed size too).
//
// # Close
//
// Close aborts blocked Writes (they return ErrClosed, transient), waits for
// kafka-go to finish its in-flight requests (each bounded by WriteTimeout)
// and closes the connections; when its context ends first it cuts the
// connections and returns the context's error. kafka-go's own Close can
// block that long, hence the bound.
//
// # Metrics
//
// With Options.Metrics set, every series carries sink="<Name>":
//
//	sluice_sink_produce_seconds            histogram (Prometheus le buckets): Write calls that sent something
//	sluice_sink_batch_messages             histogram: messages per Write
//	sluice_sink_delivered_messages_total   counter
//	sluice_sink_delivered_bytes_total      counter: key + value bytes
//	sluice_sink_errors_total{reason}       counter: failed Writes, once per reason in the result
//	sluice_sink_failed_messages_total{reason} counter: messages a Write did not deliver
//	sluice_sink_auth_failing               gauge 0/1: the last Write that learnt anything failed authentication or authorization
//	sluice_sink_broker_up                  gauge 0/1: the last Write that learnt anything reached a broker (absent before)
package kafka
