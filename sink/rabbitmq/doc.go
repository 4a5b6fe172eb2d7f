// Package rabbitmq is sluice's RabbitMQ sink (AMQP 0-9-1), built on
// github.com/rabbitmq/amqp091-go: one connection per sink, opened by the
// first Write and again after it is lost, with one publishing channel in
// confirm mode. Each Write makes one attempt and classifies every failure,
// so that the forwarder can retry, split or dead-letter; the forwarder
// owns batching, per-topic lanes, backoff and splitting.
//
// # Usage
//
//	tlsCfg, err := rabbitmq.TLSConfig("/etc/rabbitmq/ca.pem", "", "", "")
//	...
//	w, err := rabbitmq.New(rabbitmq.Options{
//		Name:       "events",
//		URL:        "amqps://sluice:secret@rabbitmq.internal:5671/prod",
//		Exchange:   "events",            // default "": the default exchange
//		RoutingKey: "{topic}.{key}",     // default "{topic}"
//		TLS:        tlsCfg,
//		Metrics:    set,
//		Logger:     logger,
//	})
//	...
//	err = w.Write(ctx, batch) // see "Errors" below
//	...
//	err = w.Close(drainCtx)
//
// # What is sent
//
// Each message is one basic.publish to the exchange Options.Exchange with
// the routing key Options.RoutingKey, both templates with {topic} and
// {key} (sink/internal/dest). The default, exchange "" and routing key
// "{topic}", puts each message in the queue named like its topic. sluice
// never declares exchanges, queues or bindings: that topology is the
// operator's.
//
// Every publish is mandatory and persistent (delivery mode 2). The body is
// the value, exactly. Headers (an AMQP table): the message's headers, as
// long strings holding the bytes exactly, a repeated name as an array of
// its values in order (the order of distinct names is not kept: a table
// is a map); sluice-id = the sluice id and sluice-key = the key (absent
// for a message without a key), unless the message carries a header of
// that name already (chained agents keep the first id). The message-id
// property is the sluice id too, the timestamp property the push time in
// whole seconds.
//
// # What an acknowledgement means
//
// A nil Write means the broker sent basic.ack for every message of the
// batch and returned none of them. With publisher confirms, RabbitMQ acks
// a message once every queue it was routed to has taken responsibility
// for it: a persistent message on a durable classic queue is on disk
// (fsynced), on a quorum queue a majority of its replicas have it. On a
// transient (non-durable) queue it is only in memory: make the queues
// durable. A message no queue takes is acked too, after basic.return:
// the sink counts that as a failure (unroutable), never as a success.
// basic.nack is a failure as well.
//
// Publishes and confirms are matched by delivery tag, returns by order:
// the broker sends a return before the message's ack and returns in
// publish order, and amqp091-go hands them over in the order the frames
// arrived (see pubChannel).
//
// # Errors
//
// Write returns one of:
//
//   - nil: all delivered.
//   - a plain error: nothing delivered, retry the whole batch. Its
//     sink.Reason says why.
//   - *sink.BatchError: per message; nil = delivered, sink.Permanent =
//     about that message alone (dead-letter it), other = retry it.
//   - sink.Permanent(err): the broker refused a message as too large but
//     its message did not say the limit, and more than one message was
//     unconfirmed: split the batch and retry the halves.
//
// Classes and reasons:
//
//	cause                                                  class                       reason
//	connection refused/reset/lost, socket closed,           transient                   network
//	  broker closed the connection (320 CONNECTION_FORCED:
//	  shutdown, restart, an operator)
//	dial/handshake/RPC deadline, WriteTimeout waiting       transient                   timeout
//	  for confirms (a hung broker)
//	caller's context cancelled                              transient                   canceled
//	Writer closed                                           transient                   closed
//	TLS handshake or certificate failure                    transient                   tls
//	login refused (403), no access to the vhost (530),      transient                   auth
//	  no permission on the exchange (403)
//	connection.blocked (memory or disk alarm)               transient, at once          blocked
//	basic.nack (a queue with x-overflow=reject-publish       transient                   nacked
//	  is full, or the broker failed to store the message)
//	basic.return NO_ROUTE (no queue bound; with the         transient for               unroutable
//	  default exchange: no queue of that name)              UnroutableGrace, then
//	                                                        Permanent per message
//	exchange does not exist (checked before publishing)     as unroutable               no_exchange
//	exchange deleted after it was checked (404 closes the   transient (checked again)   no_exchange
//	  channel)
//	basic.return with another code                          transient                   returned
//	body above the broker's max_message_size (406 closes    Permanent per message       too_large
//	  the channel; the limit is read from the broker's
//	  message)
//	batch-mates left unconfirmed by that channel close      transient                   channel
//	rendered exchange or routing key, or a header name,     Permanent per message       invalid_destination,
//	  longer than 255 bytes (checked before sending)                                    invalid_header
//	any other broker code                                   transient                   broker
//	anything not recognised                                 transient                   other
//
// Why these classes: a full queue (nack) and a memory alarm are states of
// the broker, not faults of a message, and clear by themselves; dead-
// lettering would empty the backlog into the dead-letter log. A bad
// credential rotation must not dead-letter the backlog either; the
// sluice_sink_auth_failing gauge alerts instead. A queue or exchange that
// does not exist may be about to be created (a deployment order): it gets
// UnroutableGrace (default 5 minutes) from the first time this Writer saw
// the destination unroutable, and a delivery to it resets it; after that
// its messages are dead-lettered with reason unroutable or no_exchange.
// Only a message the broker can never take — too large — is dead-lettered
// at once.
//
// # Losing the connection, blocking, hanging
//
// Every wait has a deadline: a Write is bounded by WriteTimeout and by its
// context, connecting by DialTimeout. amqp091-go's calls take no context
// and its confirm waits end only with the channel, so the sink bounds them
// by closing the socket: a publish stuck writing to a broker that stopped
// reading, an RPC without an answer, a Close without close-ok all end
// when the socket does.
//
// When the channel or the connection ends while a Write waits, the Write
// returns at once; every message the broker had not confirmed fails
// transiently, so the forwarder sends it again (it may have arrived:
// at-least-once, consumers de-duplicate by sluice-id). A Write that ends
// with messages unconfirmed for another reason (timeout, blocked,
// cancelled) retires its channel, so that late confirms cannot be taken
// for the next Write's.
//
// The next Write reconnects. Connection attempts back off exponentially
// with jitter from ReconnectMin to ReconnectMax (reset by a successful
// connection); while the backoff runs, Write fails at once with the last
// connection error, its reason included (auth stays auth).
//
// When the broker blocks the connection (connection.blocked: a memory or
// disk alarm), the broker stops reading it: publishes would pile up in
// socket buffers until the timeout. The sink stops publishing instead:
// a Write in progress stops and fails its unconfirmed messages with
// reason blocked, and later Writes fail at once, until connection.unblocked.
// The sluice_sink_blocked gauge shows it. RabbitMQ closes a connection
// whose login failed only after 3 seconds: a DialTimeout below that makes
// a refused login look like a timeout.
//
// # Order
//
// RabbitMQ keeps the order of a channel's publishes within each queue, and
// the forwarder sends a lane's batches one at a time, so messages of one
// topic (and key) routed to one queue arrive in push order; a message sent
// again after a lost connection may arrive twice, its first copy in order.
// One exception: with x-overflow=reject-publish, a queue that was full
// when one message arrived (nacked, retried) and had room again for the
// next one of the same batch takes them out of order.
//
// # Close
//
// Close aborts blocked Writes (they return ErrClosed, transient), sends
// connection.close and waits for the broker's answer; when its context
// ends first it cuts the socket and returns the context's error.
//
// # Metrics
//
// With Options.Metrics set, every series carries sink="<Name>" (the names
// of the Kafka sink where the meaning is the same):
//
//	sluice_sink_produce_seconds            histogram (Prometheus le buckets): Write calls that published something
//	sluice_sink_batch_messages             histogram: messages per Write
//	sluice_sink_delivered_messages_total   counter
//	sluice_sink_delivered_bytes_total      counter: body bytes
//	sluice_sink_errors_total{reason}       counter: failed Writes, once per reason in the result
//	sluice_sink_failed_messages_total{reason} counter: messages a Write did not deliver
//	sluice_sink_auth_failing               gauge 0/1: the last Write that learnt anything failed authentication or authorization
//	sluice_sink_broker_up                  gauge 0/1: the last Write that learnt anything reached the broker (absent before)
//	sluice_sink_blocked                    gauge 0/1: the broker blocks the connection (resource alarm)
package rabbitmq
