// Package kafkaproto is sluice's Kafka-protocol produce listener: an
// ingest front-end (agent.FrontEnd) that lets an unchanged Kafka producer
// spool through sluice by pointing bootstrap.servers at it.
//
// It answers ApiVersions, Metadata, Produce (record batch v2) and
// InitProducerId, and spools each accepted batch through the agent's
// accept path (agent.Acceptor) in one group commit per request (several
// for a request of more than MaxRequestBytes of messages, or whose decoded
// batches do not fit in the in-flight budget beside others'). The
// answer to acks 1 and -1 leaves after the fsync of that commit; acks 0
// gets no answer. The listener advertises itself as the only broker (node
// 0), leader of every partition.
//
// What a producer sees:
//
//   - Offsets are local: a batch's base offset is the spool sequence of its
//     first record, monotonic per partition (and over the whole spool),
//     never the upstream Kafka offset.
//   - Partitions: Options.Partitions (or DefaultPartitions), else with
//     Options.Mirror the upstream topic's count (agent.Acceptor.Partitions,
//     cached and persisted in StateDir), gives a topic's count, and the
//     producer's choice is forwarded as is; otherwise one partition is
//     advertised and the sink's partitioner places messages. A mirrored
//     topic's max.message.bytes is cached too: a record that would exceed
//     it upstream gets MESSAGE_TOO_LARGE instead of an ack.
//   - Idempotent producers get producer ids that are unique across
//     restarts (blocks reserved in a state file). Per producer and
//     partition the last five batches are remembered: a retried batch is
//     answered with its original offset, a gap with
//     OUT_OF_ORDER_SEQUENCE_NUMBER, an epoch older than the partition's
//     with INVALID_PRODUCER_EPOCH; sequences wrap past MaxInt32 to 0. Each idempotent batch's producer id, epoch and
//     sequences are stored with its first message (agent.Message.Meta), and
//     Serve rebuilds the windows from the last Options.ProducerStateAge of
//     the spool before it accepts connections: a batch retried across a
//     kill -9 of sluice is still recognised. A producer without state (older
//     than that, or evicted past MaxProducers) starts a new window with
//     whatever sequence it sends, as Kafka does for expired producer state;
//     a producer whose batch is being spooled is never evicted.
//   - Transactions are refused: a transactional InitProducerId, Produce or
//     FindCoordinator gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED, a batch
//     with the transactional or control bit INVALID_TXN_STATE. Consumers get
//     TOPIC_AUTHORIZATION_FAILED (Fetch) or GROUP_AUTHORIZATION_FAILED
//     (FindCoordinator); other APIs close the connection.
//   - Every partition succeeds or fails on its own. Spool full or
//     draining: NOT_ENOUGH_REPLICAS (retriable) with a throttle time, also
//     for the partitions (only) of a topic whose sink is at its backlog
//     cap; append timeout: REQUEST_TIMED_OUT; disk full or i/o error:
//     KAFKA_STORAGE_ERROR; a record over the message limit or a batch over
//     MaxRequestBytes: MESSAGE_TOO_LARGE; a record whose sluice-id header is
//     not 1-128 printable ASCII (or is repeated): INVALID_RECORD; a
//     partition named twice in one request: INVALID_REQUEST; a topic no
//     sink takes: UNKNOWN_TOPIC_OR_PARTITION.
//
// With Options.Token set, a connection must authenticate with SASL/PLAIN
// (the token as password) before anything but ApiVersions (sasl.go).
//
// Hostile input: Produce frames over MaxProduceBytes (100 MiB), Metadata
// requests over 256 KiB, other requests over 16 KiB, malformed requests, unknown APIs and versions,
// and a Metadata request whose answer would list more than 65,536
// partitions close the connection; a corrupt batch (CRC32C, lengths,
// magic, offset deltas, codec) is refused with CORRUPT_MESSAGE;
// decompression stops at MaxRequestBytes. Request frames, and apart from
// them the decoded batches of Produce requests, each stay within
// MaxInflightBytes over all connections (but for one frame alone, and one
// batch per request being decoded). Nothing is allocated in proportion to
// a length the peer claims beyond the bytes it sent.
//
// Usage:
//
//	srv, err := kafkaproto.Listen(kafkaproto.Options{Addr: "127.0.0.1:9092", StateDir: dir})
//	// ...
//	agent.New(agent.Options{..., FrontEnds: []agent.FrontEnd{srv}})
package kafkaproto
