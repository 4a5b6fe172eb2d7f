// Package amqp1 is sluice's AMQP 1.0 sink, built on github.com/Azure/go-amqp:
// ActiveMQ Artemis, ActiveMQ Classic with its AMQP transport, Qpid,
// Azure Service Bus, RabbitMQ's AMQP 1.0 support. One connection, one
// session and one sender link per target address; Write pipelines the
// batch (up to MaxInFlight messages sent before the first outcome is
// awaited) and returns when the broker settled every message.
//
//	w, err := amqp1.New(amqp1.Options{
//		Name:    "orders",
//		URL:     "amqps://sluice:secret@broker.internal:5671",
//		Address: "{topic}",
//	})
//	...
//	err = w.Write(ctx, batch) // nil: every message Accepted
//	...
//	err = w.Close(drainCtx)
//
// # What is sent
//
// Each message is one durable AMQP message (header durable = true), sent
// unsettled on the link of its address, the Address template rendered
// with the message's topic and key. Its body is one data section holding
// the value bytes (an empty one for a nil value). Properties: message-id =
// the sluice id, creation-time = the push time (millisecond precision).
// Application properties: every header (a string when its value is valid
// UTF-8, else binary), sluice-id = the sluice id, and sluice-key = the
// key (string or binary as headers; absent for a nil key). A message that
// already carries a sluice-id header keeps it (chained agents). The
// application properties are a map: a message with a repeated header
// name, or a header named sluice-key, cannot be carried without altering
// it and fails alone, Permanent, reason "bad_header". Header order is not
// kept.
//
// Links are attached with the target capability "queue" (Options
// TargetCapabilities), so that a broker that auto-creates addresses
// (Artemis) creates a queue that stores messages. Without it Artemis
// auto-creates a multicast address with no queue, accepts every message
// and drops it: Accepted then means "routed to zero queues". The sink
// asks for sender settle mode unsettled and accepts whatever the broker
// answers (go-amqp fails an attach whose mode differs from the requested
// one, Azure/go-amqp#17; the sink then attaches again without asking).
//
// # Outcomes and errors
//
// Only an Accepted outcome counts as delivered. What Write returns:
//
//   - nil: every message was Accepted.
//
//   - a plain error: nothing was delivered, retry the whole batch; its
//     sink.Reason says why.
//
//   - *sink.BatchError: per message; nil = Accepted, sink.Permanent =
//     dead-letter that message alone, other = retry it.
//
//     outcome or failure                                   class        reason
//     Accepted                                             delivered    -
//     Rejected, amqp:resource-limit-exceeded (Artemis      transient    resource_limit
//     address full with the FAIL policy; quotas),
//     com.microsoft:server-busy
//     Rejected, amqp:unauthorized-access (send             transient    auth
//     permission revoked)
//     Rejected, amqp:internal-error, resource-locked,      transient    broker
//     illegal-state
//     Rejected, amqp:not-found, resource-deleted           transient    unknown_address
//     (address deleted, no auto-create)                  for the grace, then Permanent
//     Rejected, amqp:link:message-size-exceeded            Permanent    too_large
//     Rejected, any other condition or none (decode        Permanent    rejected
//     error, invalid field, not allowed, ...)
//     Released                                             transient    released
//     Modified, undeliverable-here false                   transient    modified
//     Modified, undeliverable-here true                    Permanent    undeliverable
//     settled without outcome, non-terminal state          transient    unknown_outcome
//     message over the link's max-message-size             Permanent    too_large
//     (checked by go-amqp before sending)
//     attach refused with amqp:not-found                   transient    unknown_address
//     (address does not exist, auto-create off)          for UnknownAddressGrace, then Permanent
//     attach refused, amqp:unauthorized-access             transient    auth
//     link detached by the broker (detach-forced, ...)     transient    detached
//     connection refused/reset/closed, broker closed it    transient    network
//     no outcome within WriteTimeout                       transient    timeout
//     SASL failure                                         transient    auth
//     TLS handshake or certificate failure                 transient    tls
//     broker forces pre-settled links                      transient    settle_mode
//     caller's ctx cancelled                               transient    canceled
//     Writer closed                                        transient    closed
//     repeated or reserved header name                     Permanent    bad_header
//     address template renders ""                          Permanent    invalid_address
//
// Rejected means, in AMQP 1.0, that the message itself is invalid, so it
// is Permanent unless brokers are known to use the condition for what is
// not the message's fault: a full address, a missing permission, a broker
// failure. Authentication and authorization failures are transient on
// purpose: a bad credential rotation must not dead-letter the backlog
// (sluice_sink_auth_failing alerts). Modified with undeliverable-here is
// the receiver saying this message must not come back to this node: it is
// dead-lettered rather than retried forever; without the flag, Modified is
// a transient refusal like Released.
//
// Messages whose outcome is unknown when the link or connection dies, or
// when WriteTimeout runs out, are reported transient and sent again by the
// forwarder: a message may then arrive twice (at-least-once; message-id
// and the sluice-id property let consumers de-duplicate). A message never
// counts as delivered because it was written to the socket: a send racing
// a link detach is not delivered until an Accepted outcome says so.
//
// Order: the messages of one address go on one link, in Write order, and
// a broker queue keeps them in that order. When one of them fails
// transiently the sink sends no later message to that address in the same
// Write (reason not_sent), and the next Write sends that address's first
// message alone and waits for its outcome before pipelining the rest. So a
// retry cannot overtake messages the broker accepted after refusing one,
// except those already in flight behind the first refusal: a broker that
// refuses a message and accepts the next one within the same burst (an
// address filling up and draining, or re-created, at that moment) can
// reorder them. Across outages, reconnects and detached links order holds.
//
// # Recovery
//
// A link the broker detaches under a Write is dropped; its messages
// without an outcome are reported transient and the next Write attaches a
// new link. A link found dead before anything of the Write went out on it
// (detached while idle) is replaced at once, within the same Write. A connection that fails (broker down, reset, closed by the
// broker, no answer in WriteTimeout) is dropped with every link on it;
// the next Write reconnects, at most once per backoff step (100 ms
// doubling to 5 s, with jitter, reset by a successful connection); within
// a step Write returns the last connection error at once. At most
// MaxLinks links stay open; the least recently used one is closed beyond.
//
// # Close
//
// Close aborts a blocked Write (it returns ErrClosed, transient), then
// closes the connection; when its ctx ends first it cuts the socket and
// returns ctx's error. It is idempotent; Write after Close returns
// ErrClosed.
//
// # Metrics
//
// With Options.Metrics set, every series carries sink="<Name>":
//
//	sluice_sink_produce_seconds            histogram: Write calls that sent something
//	sluice_sink_batch_messages             histogram: messages per Write
//	sluice_sink_delivered_messages_total   counter: messages Accepted
//	sluice_sink_delivered_bytes_total      counter: key + value bytes Accepted
//	sluice_sink_errors_total{reason}       counter: failed Writes, once per reason in the result
//	sluice_sink_failed_messages_total{reason} counter: messages a Write did not deliver
//	sluice_sink_auth_failing               gauge 0/1: the last Write that learnt anything failed authentication or authorization
//	sluice_sink_broker_up                  gauge 0/1: the last Write that learnt anything reached the broker (absent before)
package amqp1
