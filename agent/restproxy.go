package agent

// A Confluent REST Proxy-compatible produce API on the ingest listener, so
// that an application producing over HTTP gains the local spool by changing
// only its base URL:
//
//	POST /topics/{topic}                      v2, application/vnd.kafka.{json,binary}.v2+json
//	POST /topics/{topic}/partitions/{p}       v2, every record to partition p
//	GET  /v3/clusters, /v3/clusters/{id}      the one cluster sluice exposes
//	POST /v3/clusters/{id}/topics/{t}/records v3, one record per request
//
// Records go through accept like every native push (limits, routing by
// topic to all matching sinks, Idempotency-Key, one all-or-nothing spool
// append, metrics, request records). Replies and errors have the REST
// Proxy's shapes and codes:
//
//   - Acknowledgement. By default (Options.RestProxyAck "spooled", or the
//     request header Sluice-Ack: spooled) the reply comes after the durable
//     local write, when no Kafka offset exists yet: partition is the
//     explicit one or -1, offset is -1 (the Java producer's "no offset" for
//     acks=0). "delivered" waits, bounded by AckTimeout (or Sluice-Timeout up
//     to AckTimeoutMax), until every target sink resolved the record and
//     reports the Kafka partition and offset of the first Kafka sink, in
//     configuration order. The header Sluice-Ids lists the records' sluice
//     ids in order (GET /v1/messages/{id}).
//   - Explicit partitions are stored with the message; Kafka sinks produce
//     to them, file and stdout sinks print them, the HTTP sink ignores them.
//     Partition counts are unknown at ingest: a partition the topic does not
//     have is dead-lettered (reason invalid_partition) by the Kafka sink.
//   - v3 exposes one cluster, Options.RestProxyCluster; a record posted to it
//     is routed by topic exactly like a native push. Another cluster id is a
//     404.
//   - Request errors answer with their HTTP status and a body
//     {"error_code": N, "message": "..."} whose code is the REST Proxy's for
//     that case (40401 topic not found — a topic no sink takes or an invalid
//     name, 40402 partition not found, 42206 payload error, 415 unsupported
//     media type, 413 too large) or, for sluice's own back-pressure, 503 with
//     50301 (spool or sink backlog full), 50302 (shutting down), 50003 (spool
//     append timed out: outcome unknown). The header Sluice-Error-Code carries
//     sluice's native code. Errors raised before routing (401 token, 413 body
//     over the request limit, 431 headers, gzip) keep the native shape.
//   - A Kafka record timestamp is the push time: the v3 "timestamp" field is
//     validated but not used. Null values (tombstones) cannot be spooled and
//     are refused (422).

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

// Media types of the REST Proxy produce API.
const (
	rpV2Response   = "application/vnd.kafka.v2+json"
	rpV2JSON       = "application/vnd.kafka.json.v2+json"
	rpV2Binary     = "application/vnd.kafka.binary.v2+json"
	rpV3Media      = "application/json"
	rpNoSchemaHint = "Payload error. Schema Registry must be configured when using schemas. (sluice has no schema registry: produce BINARY, JSON or STRING data)"
)

// REST Proxy error codes (kafka-rest Errors and rest-utils KafkaExceptionMapper).
const (
	rpTopicNotFound     = 40401
	rpPartitionNotFound = 40402
	rpInvalidPayload    = 42206
	rpKafkaError        = 50002
	rpRetriable         = 50003
	rpUnavailable       = 50301 // sluice: spool or sink backlog full
	rpShuttingDown      = 50302 // kafka-rest: broker not available
)

// rpError is an error reply in the REST Proxy's shape.
type rpError struct {
	status int
	code   int    // error_code
	msg    string // message
	native string // sluice's code: metrics label and Sluice-Error-Code
}

func rpErrorf(status, code int, native, format string, args ...any) *rpError {
	return &rpError{status: status, code: code, native: native, msg: fmt.Sprintf(format, args...)}
}

// rpFromNative translates an error of the common push path.
func rpFromNative(e *apiError) *rpError {
	r := &rpError{status: e.status, code: e.status, msg: e.msg, native: e.code}
	switch e.code {
	case "no_route", "bad_topic":
		r.status, r.code, r.msg = http.StatusNotFound, rpTopicNotFound, "Topic not found. (sluice: "+e.msg+")"
	case "spool_full":
		r.code = rpUnavailable
	case "spool_timeout":
		r.code = rpRetriable
	case "shutting_down":
		r.code = rpShuttingDown
	}
	return r
}

func rpNotFound() *rpError {
	return rpErrorf(http.StatusNotFound, http.StatusNotFound, "not_found", "HTTP 404 Not Found")
}

func rpMethodNotAllowed(ctx *fasthttp.RequestCtx, allow string) *rpError {
	ctx.Response.Header.Set("Allow", allow)
	return rpErrorf(http.StatusMethodNotAllowed, http.StatusMethodNotAllowed, "method_not_allowed", "HTTP 405 Method Not Allowed")
}

// routeRestProxy serves the Confluent REST Proxy-compatible produce API
// (POST /topics/{topic}, /topics/{topic}/partitions/{p}, /v3/clusters...).
// It reports whether it handled the request.
func (a *Agent) routeRestProxy(ctx *fasthttp.RequestCtx, path, method string) (*apiError, bool) {
	var media string
	var e *rpError
	switch {
	case strings.HasPrefix(path, "/topics/"):
		media, e = rpV2Response, a.restProxyV2(ctx, strings.TrimPrefix(path, "/topics/"), method)
	case path == "/v3/clusters" || strings.HasPrefix(path, "/v3/clusters/"):
		media, e = rpV3Media, a.restProxyV3(ctx, strings.TrimPrefix(path, "/v3/clusters"), method)
	default:
		return nil, false
	}
	if e != nil {
		a.m.rejected(e.native)
		if e.status == http.StatusServiceUnavailable {
			ctx.Response.Header.Set("Retry-After", "1")
		}
		rpReplyError(ctx, media, e)
	}
	return nil, true
}

func rpReplyError(ctx *fasthttp.RequestCtx, media string, e *rpError) {
	if e.native != "" {
		ctx.Response.Header.Set("Sluice-Error-Code", e.native)
	}
	rpWrite(ctx, e.status, media, struct {
		ErrorCode int    `json:"error_code"`
		Message   string `json:"message"`
	}{e.code, e.msg})
}

// rpWrite answers v as JSON without HTML escaping, as Jackson writes it.
func rpWrite(ctx *fasthttp.RequestCtx, status int, media string, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	ctx.SetStatusCode(status)
	ctx.SetContentType(media)
	ctx.SetBody(b.Bytes())
}

// mediaType is the lower-cased media type of a Content-Type, without
// parameters.
func mediaType(ct []byte) string {
	mt, _, _ := bytes.Cut(ct, []byte{';'})
	return strings.ToLower(string(bytes.TrimSpace(mt)))
}

// rpDecode decodes exactly one JSON value of body into v, refusing unknown
// fields as the REST Proxy's Jackson mapper does.
func rpDecode(body []byte, v any) *rpError {
	if !utf8.Valid(body) { // encoding/json would silently replace the bytes
		return rpErrorf(http.StatusBadRequest, http.StatusBadRequest, "bad_request", "request body is not valid UTF-8")
	}
	switch err := decodeStrict(body, v); {
	case errors.Is(err, errTrailing):
		return rpErrorf(http.StatusBadRequest, http.StatusBadRequest, "bad_request",
			"trailing data after the request object (sluice takes one request object; the streamed v3 form is not supported)")
	case err != nil:
		return rpErrorf(http.StatusBadRequest, http.StatusBadRequest, "bad_request", "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// isNull reports whether a raw JSON value is absent or null.
func isNull(v json.RawMessage) bool { return v == nil || string(v) == "null" }

// decodeB64 accepts standard base64, padded or not.
func decodeB64(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// rpAck reads the acknowledgement mode: Options.RestProxyAck, overridden per
// request by Sluice-Ack, with Sluice-Timeout as on native pushes.
func (a *Agent) rpAck(ctx *fasthttp.RequestCtx) (bool, time.Duration, *rpError) {
	delivered, timeout, e := a.ackMode(ctx, a.opts.RestProxyAck == "delivered")
	if e != nil {
		return false, 0, rpFromNative(e)
	}
	return delivered, timeout, nil
}

// rpResult is what the REST Proxy reports for one produced record.
type rpResult struct {
	partition int32
	offset    int64
	err       *rpError // delivery failure (delivered acknowledgement only)
}

// rpProduce spools msgs through accept and, when the acknowledgement mode
// says so, waits for their delivery. It sets Sluice-Ids.
func (a *Agent) rpProduce(ctx *fasthttp.RequestCtx, msgs []Msg) ([]rpResult, *rpError) {
	delivered, timeout, e := a.rpAck(ctx)
	if e != nil {
		return nil, e
	}
	acc, ae := a.accept(ctx, msgs)
	if ae != nil {
		return nil, rpFromNative(ae)
	}
	ctx.Response.Header.Set("Sluice-Ids", strings.Join(acc.IDs, ","))
	if acc.replay {
		ctx.Response.Header.Set("Sluice-Idempotent-Replay", "true")
	}
	res := make([]rpResult, len(msgs))
	for i := range msgs {
		res[i] = rpResult{partition: msgs[i].Partition, offset: -1} // NoPartition is -1
	}
	if !delivered {
		return res, nil
	}
	a.waitDelivered(acc, timeout)
	for i := range res {
		var st Status
		if acc.SIDs != nil {
			st = a.statusOf(acc.SIDs[i], acc.IDs[i], acc.Targets[i])
		} else {
			st = a.status(acc.IDs[i])
		}
		a.rpOutcome(st, timeout, &res[i])
	}
	return res, nil
}

// rpOutcome fills r from a record's status after the wait for delivery.
func (a *Agent) rpOutcome(st Status, timeout time.Duration, r *rpResult) {
	switch st.Status {
	case "delivered":
		for _, f := range a.fwds {
			if ss, ok := st.Sinks[f.spec.Name]; ok && ss.Partition != nil && ss.Offset != nil {
				r.partition, r.offset = *ss.Partition, *ss.Offset
				return
			}
		}
	case "failed", "dropped":
		// Sinks first (their reasons map to Kafka's errors), then queues.
		for _, f := range a.fwds {
			if r.err = rpTargetError(st, "sink", f.spec.Name); r.err != nil {
				return
			}
		}
		for _, q := range a.queues {
			if r.err = rpTargetError(st, "queue", q.spec.Name); r.err != nil {
				return
			}
		}
	default: // pending at the deadline
		r.err = rpErrorf(http.StatusInternalServerError, rpRetriable, "pending",
			"Retriable Kafka error: not acknowledged by every sink within %s; the record stays spooled and will be delivered (sluice id %s)", timeout, st.ID)
	}
}

// rpTargetError is the error a record failed or dropped by sink or queue
// name answers with, nil when that target neither failed nor dropped it.
func rpTargetError(st Status, kind, name string) *rpError {
	ss, ok := st.Sinks[name]
	switch {
	case !ok:
	case ss.Status == "failed" && ss.Reason == "invalid_partition":
		return rpErrorf(http.StatusNotFound, rpPartitionNotFound, "failed", "Partition not found. (sluice: %s %s: %s)", kind, name, ss.Error)
	case ss.Status == "failed" && ss.Reason == "unknown_topic":
		return rpErrorf(http.StatusNotFound, rpTopicNotFound, "failed", "Topic not found. (sluice: %s %s: %s)", kind, name, ss.Error)
	case ss.Status == "failed":
		return rpErrorf(http.StatusInternalServerError, rpKafkaError, "failed", "Kafka error: %s %s dead-lettered the record (%s): %s", kind, name, ss.Reason, ss.Error)
	case ss.Status == "dropped":
		return rpErrorf(http.StatusInternalServerError, rpKafkaError, "dropped", "Kafka error: %s %s dropped the record (backlog policy drop_oldest)", kind, name)
	}
	return nil
}

// v2 produce: request and response as in kafka-rest's entities/v2.
