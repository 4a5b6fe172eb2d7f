// Package sqs is sluice's AWS SQS sink, built on aws-sdk-go-v2's sqs client
// (AWS JSON 1.0 protocol). It sends every Write with SendMessageBatch and
// counts a message as delivered only when SQS lists its entry as
// Successful: an HTTP 200 carries a Failed list too, and an entry in
// neither list is never taken for delivered.
//
//	w, err := sqs.New(sqs.Options{
//		Name: "events",
//		URL:  "https://sqs.eu-west-1.amazonaws.com/123456789012/events",
//		// Region from the URL; credentials from the AWS default chain.
//		Logger: logger, Metrics: set,
//	})
//	...
//	err = w.Write(ctx, batch) // see "Errors"
//	...
//	err = w.Close(drainCtx)
//
// # Credentials
//
// Options.Credentials nil means the AWS SDK's default chain, resolved at the
// first request and refreshed before expiry: AWS_ACCESS_KEY_ID /
// AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN; web identity
// (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, which EKS sets for IRSA);
// AWS_PROFILE with the shared config and credentials files; ECS and EKS
// Pod Identity container credentials; the EC2 instance role. The SDK's own
// retries are off (sluice retries), and AWS_CA_BUNDLE is honoured.
//
// # Requests
//
// The messages of a Write are encoded in order and cut into requests of at
// most 10 entries and Options.RequestBytes bytes, counted as SQS counts
// them: the body plus, for every message attribute, its name, its data
// type ("String" or "Binary") and its value. A message over RequestBytes on
// its own fails with a Permanent error, reason too_large, before anything
// is sent (emulators do not check sizes; SQS does). For a standard queue
// the requests of one Write go out Options.MaxInFlight at a time; a
// standard queue keeps no order anyway. For a FIFO queue they go one after
// the other, and once a message of a message group failed, the later
// messages of that group in the Write are not sent (reason not_sent), so a
// retry cannot put them behind their successors.
//
// # What is sent
//
// Body: the value, when it is text SQS accepts (valid UTF-8 of #x9 #xA #xD
// #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF, not empty). Otherwise the
// body is the value in standard base64 with attribute sluice-encoding=base64,
// or, for an empty value, the body "-" with sluice-encoding=empty (SQS
// refuses empty bodies). Decode reverses this.
//
// Message attributes (SQS allows 10 per message):
//
//	sluice-id        String  the sluice id (MessageDeduplicationId on FIFO queues too)
//	sluice-topic     String  the sluice topic (every topic of the sink goes to the one queue)
//	sluice-key       String, or Binary when the key is not SQS text; absent without a key
//	                 (an empty key is sent as no key)
//	sluice-encoding  String  base64 or empty, as above; absent when the body is the value
//	<header name>    String, or Binary when the value is not SQS text: one per header, when
//	                 every header of the message fits SQS's rules (name of up to 256 of
//	                 A-Z a-z 0-9 _ - ., not starting with AWS. or Amazon., no leading,
//	                 trailing or double period; unique ignoring case; a non-empty value;
//	                 not one of the names above) and the total stays within 10
//	sluice-headers   String  otherwise, all the message's headers in one attribute, in
//	                 order, as JSON [{"name":"h","value":"v"},{"name":"b","value_b64":"AA=="}]
//	                 (no value field: an empty value)
//
// So no header is ever dropped or changed; a consumer looks for
// sluice-headers first. Headers sent as attributes of their own come back
// in no particular order (Decode sorts them by name).
//
// FIFO queues (URL ending in .fifo): MessageGroupId is the key when it is 1
// to 128 of A-Z a-z 0-9 and ASCII punctuation, else "sha256-" and the hex
// SHA-256 of the key; keyless messages get Options.GroupID.
// MessageDeduplicationId is the sluice id (hashed the same way when it is
// not a valid id), so a retry within SQS's 5-minute deduplication window is
// dropped by SQS.
//
// # Errors
//
// Write returns nil (all delivered), a plain error (nothing delivered,
// retry the batch; its sink.Reason says why) or a *sink.BatchError (per
// message: nil = delivered, Permanent = about that message, dead-letter it,
// other = retry it). Entries SQS accepted are never reported as failed, so
// the forwarder never sends them again.
//
//	cause                                                 class                  reason
//	connection refused/reset, DNS, EOF                    transient              network
//	RequestTimeout passed; caller's deadline              transient              timeout
//	caller's context cancelled / Writer closed            transient              canceled / closed
//	no credentials, InvalidClientTokenId,                 transient              auth
//	  SignatureDoesNotMatch, UnrecognizedClient,
//	  AccessDenied, ExpiredToken, InvalidSecurity,
//	  RequestExpired, any 401 or 403, KMS access errors
//	RequestThrottled, Throttling, KMS throttling,         transient              throttled
//	  OverLimit, 429
//	InternalError, ServiceUnavailable, 5xx,               transient              server
//	  per-entry failures without sender fault
//	QueueDoesNotExist / NonExistentQueue,                 transient (forever)    no_queue
//	  QueueDeletedRecently, 404
//	an entry listed neither Successful nor Failed         transient              no_result
//	per-entry failure with sender fault                   Permanent per message  invalid
//	  (InvalidMessageContents, InvalidParameterValue, ...)
//	MessageTooLong, BatchRequestTooLong (per entry, or    Permanent per message  too_large
//	  for a request of one), message over RequestBytes
//	content codes for a whole request of several          sent again one per     (as above)
//	  entries (SQS does not say which entry)              request to find it
//	any other request-level code                          transient              other
//
// Credentials and permissions are transient on purpose: a bad credential
// rotation must not dead-letter the backlog; the log says so once and
// sluice_sink_auth_failing is 1 until a request gets through. A missing
// queue is transient forever too: one sink has one queue, so it is a
// configuration error that would dead-letter every message; the agent
// shows the sink failing until the queue exists.
//
// # Close
//
// Close aborts Writes in progress (they return ErrClosed), waits for them
// until its context ends and closes idle connections; it is idempotent.
//
// # Metrics
//
// With Options.Metrics, every series carries sink="<Name>":
//
//	sluice_sink_sqs_request_seconds        histogram: SendMessageBatch round trips
//	sluice_sink_delivered_messages_total   counter: messages SQS accepted
//	sluice_sink_failed_messages_total{reason} counter: messages a Write did not deliver
//	sluice_sink_auth_failing               gauge 0/1
//	sluice_sink_broker_up                  gauge 0/1: the last Write reached SQS and the queue exists (absent before the first)
package sqs
