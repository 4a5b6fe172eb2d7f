// Package httpsink is the HTTP sink: it POSTs each batch to an upstream
// collector (another sluice, Vector, Fluent Bit, ...) in the JSON format of
// sluice's own POST /v1/messages, so that agents can be chained.
//
//	w, err := httpsink.New(httpsink.Options{
//		URL:   "https://collector.example.com/v1/messages",
//		Token: token, // read from SLUICE_<NAME>_TOKEN_FILE by the caller
//	})
//	...
//	err = w.Write(ctx, msgs) // nil: the upstream answered 2xx
//	...
//	err = w.Close(ctx)
//
// # Request
//
// One request per Write: POST Options.URL with Content-Type
// application/json (Content-Encoding: gzip with Options.Gzip),
// Authorization: Bearer <Token> when a token is set, and Options.Headers.
// The body is
//
//	{"messages":[{"topic":"orders","key":"k1","value":{"b":1},"headers":{"h":"v"},"id":"..."}, ...]}
//
// in batch order, fields in this order:
//
//	topic      string  always
//	key        string  the key's bytes as a JSON string; absent when the key is nil ("" for an empty key)
//	value      any     the message bytes themselves, when they are one JSON document in valid
//	                   UTF-8 without leading or trailing whitespace: {"b":1,"a":[1.50,"\u00e9"]}
//	                   is sent byte for byte, and a receiving sluice stores exactly those bytes
//	value_b64  string  instead of value for everything else (text, binary, empty, JSON with
//	                   surrounding whitespace, JSON nesting arrays and objects more than 64
//	                   deep or with a number over 1,000 characters or out of a float64's
//	                   range, which readers with lower limits would refuse with the whole
//	                   batch): base64, standard alphabet, padded
//	headers    object  header name → value as JSON strings, in message order; absent when none
//	id         string  sink.Message.ID, so a receiving sluice keeps the sluice-id (chaining)
//
// A header named sluice-id (any case) is not sent: the id field carries the
// id, and a receiving sluice rejects the header. Strings escape '"', '\\',
// control characters, U+2028 and U+2029, nothing else. Message.Time and
// Message.Partition are not part of the format; the receiver stamps its own
// time and picks its own partition.
//
// # Messages the format cannot carry
//
// The format holds keys and header values as JSON strings and headers as an
// object, so it cannot carry, without changing bytes, a key or header value
// that is not valid UTF-8, nor a header name that is repeated or empty
// (receivers keep one value per name, and sluice rejects an empty name).
// Such a message is never altered: it is left out of the request and, once
// the rest of the batch was delivered, reported in a *sink.BatchError as a
// Permanent error with reason "not_utf8" or "bad_header". The forwarder
// dead-letters that message alone, with the reason, and delivers its
// batch-mates. If the request fails, the failure is reported for the whole
// batch as below.
//
// # Outcomes
//
// What Write returns, and so what the forwarder does:
//
//	answer                           error                        reason          forwarder
//	2xx                              nil                          -               delivered
//	3xx                              transient, not followed      redirect        retries (and a hint is logged)
//	401, 403, 407                    transient                    auth            retries
//	404, 405, 415                    transient                    http_<status>   retries
//	408, 429                         transient, Retry-After       http_<status>   retries
//	400, 413, any other 4xx          sink.Permanent               http_<status>   splits, dead-letters the single culprit
//	5xx                              transient, Retry-After       http_<status>   retries
//	any other status                 transient                    http_<status>   retries
//	connection refused/reset, DNS    transient                    network         retries
//	TLS handshake or certificate     transient                    tls             retries
//	no complete answer in Timeout    transient                    timeout         retries
//	ctx done                         wraps ctx.Err()              canceled        stops
//	Close called                     wraps ErrClosed              closed          stops
//
// Authentication and authorization failures are transient on purpose: a
// bad credential rotation must not dead-letter the backlog; the forwarder
// retries forever and raises its alerting metric until the credential is
// fixed. The same holds for answers that say the endpoint itself is wrong,
// the same for every batch and never about one message: a redirect (redirects
// are not followed: a POST must not silently turn into a GET elsewhere), 404
// Not Found, 405 Method Not Allowed and 415 Unsupported Media Type (for
// example Gzip against a receiver that does not decode it and says so). Making them Permanent would
// split every batch and dead-letter the whole backlog one message at a time.
// 400, 413 and the other 4xx answers refuse the request's content, which is
// what Permanent means: the forwarder halves the batch until the offending
// message is alone and dead-letters only that one.
//
// Non-2xx errors are a *StatusError (errors.As) wrapped with the reason:
// it holds the status, the start of the response body (at most
// BodyExcerptBytes, made printable) and, for redirects, the Location. When a
// 408, 429 or 5xx answer carries Retry-After (delay-seconds or an HTTP
// date), Write waits min(Retry-After, MaxRetryAfter) before returning the
// transient error, so the forwarder's retry comes no earlier than asked;
// the wait ends early when ctx is done or Close is called. A Write thus
// takes at most Timeout plus MaxRetryAfter.
//
// A request that failed may still have been delivered (a timeout after the
// upstream accepted it): delivery is at-least-once and the id field lets
// the receiver de-duplicate.
//
// # Resources
//
// The body is encoded into a buffer reused by the next Write (and gzipped
// into a second one); when the transport is still reading the previous body
// (an upstream that answered before reading it all), fresh buffers are used
// instead. The default client keeps connections alive to the upstream and
// takes proxies from the environment; redirects are never followed, with a
// given Options.Client too. Close aborts a Write in progress, waits for it
// and closes idle connections; it is idempotent, and Write after Close
// returns ErrClosed (transient). Write and Close may run concurrently;
// concurrent Writes run one after the other.
package httpsink
