// Package nats is sluice's NATS JetStream sink, built on nats.go and its
// jetstream package. Every message is a JetStream publish that waits for
// its PubAck; core NATS publish (fire and forget) is never used. The sink
// makes one attempt per Write and classifies every failure, so that the
// forwarder can retry or dead-letter; the forwarder owns batching, lanes,
// backoff and retries.
//
// # Usage
//
//	tlsCfg, err := nats.TLSConfig("/etc/nats/ca.pem", "", "", "", false)
//	...
//	w, err := nats.New(nats.Options{
//		Name:    "events",
//		URL:     "tls://sluice:" + password + "@nats.internal:4222",
//		Subject: "events.{topic}",
//		TLS:     tlsCfg,
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
// Each message is published to the subject Options.Subject renders from
// its topic and key (default: the topic); the server stores it in the
// stream whose subjects capture that subject. The payload is the value's
// bytes. NATS headers carry:
//
//	sluice-id        the sluice id (Message.ID)
//	Nats-Msg-Id      the same id: JetStream's de-duplication key
//	sluice-key       the key, when it has one (an empty key is a key)
//	<name>           each header of the message, values of one name in order
//
// NATS headers are text and a map: a value that NATS would not carry
// exactly (not UTF-8, control characters, CR or LF, leading or trailing
// space) is sent in standard base64 under sluice-b64-<name>, and so is a
// header whose name is reserved (sluice-key, sluice-key-b64, sluice-b64-*,
// and Nats-*, which the server would act on: Nats-Rollup could purge the
// stream, Nats-Expected-* reject the message); all values of such a name
// are sent that way. A key NATS cannot carry verbatim goes in
// sluice-key-b64. DecodeHeaders undoes this for Go consumers. The order
// between different header names is not kept. A header name NATS does not
// accept (not printable ASCII, or one of `"(),/:;<=>?@[\]{}`) fails the
// message permanently (reason invalid_header). Message.Time is not sent:
// the stream timestamps each message when it stores it.
//
// # Delivery
//
// Write publishes its messages in order on one connection, asynchronously,
// at most Options.MaxPending awaiting their PubAck at once, and returns
// when every message has its outcome. nil means every message has a
// PubAck: the stream stored it (on a replicated stream: a quorum of its
// replicas did). A PubAck saying "duplicate" counts as delivered: the
// stream already had that Nats-Msg-Id.
//
// Every outcome arrives: a PubAck, an error from the server, AckTimeout
// without an answer, or the connection dropping (nats.go fails every
// pending publish when it disconnects). A message without a PubAck is
// never reported delivered, and the forwarder sends it again. Such a
// message may still have been stored (its PubAck was lost); the resend
// carries the same Nats-Msg-Id, so the stream drops the copy if it comes
// within the stream's duplicate window (stream setting duplicate_window,
// default 2 minutes). A resend after the window (a longer outage) is
// stored a second time; consumers de-duplicate by sluice-id.
//
// Order: the messages of a Write are published in order on one connection,
// so the stream stores them in order. Nothing is buffered while
// disconnected (nats.go's reconnect buffer is off): a publish then fails
// at once, so nothing published before a disconnect can be overtaken by
// something sent on the next connection. After a failure that is not about
// the message itself (connection lost, closed) the rest of the Write is
// not published. So a retry sends the failed messages and everything after
// them, and earlier copies that made it are dropped as duplicates: per-key
// order holds across disconnects, server restarts and lost PubAcks. The
// exception is a server refusing one message transiently (a stream at its
// limits with discard new) while accepting a later one published behind
// it: the refused one is stored after it when it is sent again.
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
//
// Every message has its own PubAck, so a failure is always known per
// message and the sink never asks the forwarder to split a batch.
//
//	cause                                                     class                    reason
//	no server connected (refused, down, reconnecting)          transient                network
//	no PubAck within AckTimeout, MaxPending stalled            transient                timeout
//	caller's context cancelled                                 transient                canceled
//	Writer closed                                              transient                closed
//	TLS handshake or certificate failure                       transient                tls
//	authorization violation, expired or revoked credentials,   transient                auth
//	  publish permission denied (no PubAck after a
//	  permissions violation)
//	no stream captures the subject (no responders)             transient for            no_stream
//	                                                           NoStreamGrace, then
//	                                                           Permanent per message
//	stream at max_msgs, max_bytes or max_msgs_per_subject      transient                stream_full
//	  with discard new; account resource limits
//	JetStream not enabled or unavailable, insufficient         transient                unavailable
//	  resources, store failure
//	earlier copy with the same Nats-Msg-Id still in progress   transient                in_progress
//	any other JetStream error (sealed stream, ...)             transient                rejected
//	anything not recognised                                    transient                other
//	over the server's max_payload (checked by nats.go before   Permanent per message    too_large
//	  sending), over the stream's max_msg_size, headers over
//	  64 KiB
//	subject not valid (empty token, wildcard token,            Permanent per message    invalid_subject
//	  whitespace, longer than MaxSubjectBytes)
//	header name NATS cannot carry                              Permanent per message    invalid_header
//
// A full stream is transient on purpose: it is full for every message
// until consumers or limits make room, and dead-lettering would empty the
// backlog into the dead-letter log; the forwarder retries it and
// sluice_sink_failing alerts. A message too large for the stream is
// permanent: retrying that message can never succeed. Authentication and
// permission failures are transient too: a bad credential rotation must
// not dead-letter the backlog. The no-stream grace runs per subject from
// the first time this Writer saw it without a stream, and is reset by a
// delivery to it; before turning permanent, the Writer asks JetStream
// which stream has the subject, and stays transient when JetStream does
// not answer. A stream created with no_ack never sends PubAcks: every
// message to it times out and is retried, so do not point the sink at
// one.
//
// # Connection
//
// New returns without waiting for a server; the connection is made in the
// background and the first Write waits for the first attempt. While no
// server is connected Write fails at once (reason network, auth or tls
// from the last attempt) and nats.go keeps reconnecting every
// ReconnectWait, forever, also after authentication failures, so a fixed
// credential or a server back up heals without a restart. A server that
// stops answering without closing the connection is found by pings
// (every 10 s, three missed) and by a socket write blocked longer than
// ConnectTimeout; meanwhile Writes end after AckTimeout.
//
// # Close
//
// Close aborts blocked Writes (they return ErrClosed, transient) and
// closes the connection; when its context ends first it cuts the sockets
// and returns the context's error. A Write that its context or Close cut
// short returns at once: it publishes copies of the messages, so the
// caller's buffers are never read after Write returned.
//
// # Metrics
//
// With Options.Metrics set, every series carries sink="<Name>":
//
//	sluice_sink_produce_seconds            histogram (Prometheus le buckets): Write calls that sent something
//	sluice_sink_batch_messages             histogram: messages per Write
//	sluice_sink_delivered_messages_total   counter
//	sluice_sink_delivered_bytes_total      counter: key + value bytes
//	sluice_sink_duplicates_total           counter: PubAcks saying the stream already had the message (resends dropped)
//	sluice_sink_errors_total{reason}       counter: failed Writes, once per reason in the result
//	sluice_sink_failed_messages_total{reason} counter: messages a Write did not deliver
//	sluice_sink_auth_failing               gauge 0/1: authentication or a publish permission failing
//	sluice_sink_broker_up                  gauge 0/1: connected to a server (absent before the first attempt)
package nats
