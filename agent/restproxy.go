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
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluiceio/sluice/sink"
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
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return rpErrorf(http.StatusBadRequest, http.StatusBadRequest, "bad_request", "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return rpErrorf(http.StatusBadRequest, http.StatusBadRequest, "bad_request",
			"trailing data after the request object (sluice takes one request object; the streamed v3 form is not supported)")
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
func (a *Agent) rpAck(ctx *fasthttp.RequestCtx) (delivered bool, timeout time.Duration, e *rpError) {
	delivered = a.opts.RestProxyAck == "delivered"
	if v := peekHeader(ctx, "Sluice-Ack"); len(v) > 0 {
		switch strings.ToLower(string(v)) {
		case "delivered":
			delivered = true
		case "spooled":
			delivered = false
		default:
			return false, 0, rpErrorf(http.StatusBadRequest, http.StatusBadRequest, "bad_request", "Sluice-Ack must be spooled or delivered")
		}
	}
	timeout = a.opts.AckTimeout
	if v := peekHeader(ctx, "Sluice-Timeout"); len(v) > 0 {
		d, err := parseTimeout(string(v))
		if err != nil {
			return false, 0, rpErrorf(http.StatusBadRequest, http.StatusBadRequest, "bad_request", "Sluice-Timeout: %v", err)
		}
		timeout = min(d, a.opts.AckTimeoutMax)
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
		for _, f := range a.fwds {
			ss, ok := st.Sinks[f.spec.Name]
			switch {
			case !ok:
			case ss.Status == "failed" && ss.Reason == "invalid_partition":
				r.err = rpErrorf(http.StatusNotFound, rpPartitionNotFound, "failed", "Partition not found. (sluice: sink %s: %s)", f.spec.Name, ss.Error)
			case ss.Status == "failed" && ss.Reason == "unknown_topic":
				r.err = rpErrorf(http.StatusNotFound, rpTopicNotFound, "failed", "Topic not found. (sluice: sink %s: %s)", f.spec.Name, ss.Error)
			case ss.Status == "failed":
				r.err = rpErrorf(http.StatusInternalServerError, rpKafkaError, "failed", "Kafka error: sink %s dead-lettered the record (%s): %s", f.spec.Name, ss.Reason, ss.Error)
			case ss.Status == "dropped":
				r.err = rpErrorf(http.StatusInternalServerError, rpKafkaError, "dropped", "Kafka error: sink %s dropped the record (backlog policy drop_oldest)", f.spec.Name)
			}
			if r.err != nil {
				return
			}
		}
	default: // pending at the deadline
		r.err = rpErrorf(http.StatusInternalServerError, rpRetriable, "pending",
			"Retriable Kafka error: not acknowledged by every sink within %s; the record stays spooled and will be delivered (sluice id %s)", timeout, st.ID)
	}
}

// v2 produce: request and response as in kafka-rest's entities/v2.

type v2Record struct {
	Key       json.RawMessage `json:"key"`
	Value     json.RawMessage `json:"value"`
	Partition *int32          `json:"partition"`
}

type v2Request struct {
	Records []v2Record `json:"records"`
	// Accepted and ignored for binary and json, as kafka-rest does.
	KeySchema     json.RawMessage `json:"key_schema"`
	KeySchemaID   json.RawMessage `json:"key_schema_id"`
	ValueSchema   json.RawMessage `json:"value_schema"`
	ValueSchemaID json.RawMessage `json:"value_schema_id"`
}

type v2Offset struct {
	Partition *int32  `json:"partition"`
	Offset    *int64  `json:"offset"`
	ErrorCode *int    `json:"error_code"`
	Error     *string `json:"error"`
}

type v2Response struct {
	Offsets       []v2Offset `json:"offsets"`
	KeySchemaID   *int       `json:"key_schema_id"`
	ValueSchemaID *int       `json:"value_schema_id"`
}

// restProxyV2 serves /topics/{topic} and /topics/{topic}/partitions/{p}.
func (a *Agent) restProxyV2(ctx *fasthttp.RequestCtx, rest, method string) *rpError {
	topic, part, hasPart := strings.Cut(rest, "/partitions/")
	if strings.Contains(topic, "/") || strings.Contains(part, "/") {
		return rpNotFound()
	}
	if method != http.MethodPost {
		return rpMethodNotAllowed(ctx, "POST")
	}
	var binary bool
	switch mt := mediaType(ctx.Request.Header.ContentType()); mt {
	case rpV2JSON:
	case rpV2Binary:
		binary = true
	case "application/vnd.kafka.avro.v2+json", "application/vnd.kafka.jsonschema.v2+json", "application/vnd.kafka.protobuf.v2+json":
		return rpErrorf(http.StatusUnprocessableEntity, rpInvalidPayload, "unsupported_media_type", "%s", rpNoSchemaHint)
	default:
		return rpErrorf(http.StatusUnsupportedMediaType, http.StatusUnsupportedMediaType, "unsupported_media_type",
			"HTTP 415 Unsupported Media Type (sluice: %q; use %s or %s)", mt, rpV2JSON, rpV2Binary)
	}
	partition := sink.NoPartition
	if hasPart {
		p, err := strconv.ParseInt(part, 10, 32)
		if err != nil || p < 0 {
			return rpErrorf(http.StatusNotFound, rpPartitionNotFound, "bad_request", "Partition not found.")
		}
		partition = int32(p)
	}
	var req v2Request
	if e := rpDecode(ctx.PostBody(), &req); e != nil {
		return e
	}
	if len(req.Records) == 0 {
		return rpErrorf(http.StatusUnprocessableEntity, http.StatusUnprocessableEntity, "bad_request", "records must not be empty")
	}
	msgs := make([]Msg, len(req.Records))
	for i, r := range req.Records {
		m := &msgs[i]
		m.Topic, m.Partition = topic, partition
		switch {
		case r.Partition != nil && *r.Partition < 0:
			return rpErrorf(http.StatusUnprocessableEntity, http.StatusUnprocessableEntity, "bad_request", "records[%d].partition must be greater than or equal to 0", i)
		case r.Partition != nil && hasPart && *r.Partition != partition:
			return rpErrorf(http.StatusUnprocessableEntity, http.StatusUnprocessableEntity, "bad_request", "records[%d].partition %d differs from the partition %d of the path", i, *r.Partition, partition)
		case r.Partition != nil:
			m.Partition = *r.Partition
		}
		var e *rpError
		if m.Key, e = v2Data(r.Key, binary, i, "key"); e != nil {
			return e
		}
		if m.Value, e = v2Data(r.Value, binary, i, "value"); e != nil {
			return e
		}
		if m.Value == nil {
			return rpErrorf(http.StatusUnprocessableEntity, http.StatusUnprocessableEntity, "bad_request",
				"records[%d].value is null: sluice cannot spool null values (tombstones)", i)
		}
		if len(m.Value) > a.opts.MaxMessageBytes {
			return rpErrorf(http.StatusRequestEntityTooLarge, http.StatusRequestEntityTooLarge, "too_large",
				"records[%d].value of %d bytes is larger than the %d bytes allowed", i, len(m.Value), a.opts.MaxMessageBytes)
		}
	}
	if !sink.ValidTopic(topic) {
		return rpFromNative(errorf(http.StatusBadRequest, "bad_topic", "invalid topic name %q", topic))
	}
	res, e := a.rpProduce(ctx, msgs)
	if e != nil {
		return e
	}
	out := v2Response{Offsets: make([]v2Offset, len(res))}
	for i, r := range res {
		if r.err != nil {
			out.Offsets[i] = v2Offset{ErrorCode: &r.err.code, Error: &r.err.msg}
			continue
		}
		out.Offsets[i] = v2Offset{Partition: &r.partition, Offset: &r.offset}
	}
	rpWrite(ctx, http.StatusOK, rpV2Response, out)
	return nil
}

// v2Data converts one embedded key or value: json keeps the JSON text as
// sent, binary decodes base64. nil = null.
func v2Data(v json.RawMessage, binary bool, i int, field string) ([]byte, *rpError) {
	if isNull(v) {
		return nil, nil
	}
	if !binary {
		return v, nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, rpErrorf(http.StatusBadRequest, http.StatusBadRequest, "bad_request", "records[%d].%s: a base64 string is required for binary data", i, field)
	}
	b, err := decodeB64(s)
	if err != nil {
		return nil, rpErrorf(http.StatusUnprocessableEntity, http.StatusUnprocessableEntity, "bad_request",
			"Record %s contains invalid base64 encoding (records[%d])", field, i)
	}
	return b, nil
}

// v3 produce: request and response as in kafka-rest's entities/v3.

type v3Data struct {
	Type                *string         `json:"type"`
	Data                json.RawMessage `json:"data"`
	Subject             json.RawMessage `json:"subject"`
	SubjectNameStrategy json.RawMessage `json:"subject_name_strategy"`
	SchemaID            json.RawMessage `json:"schema_id"`
	SchemaVersion       json.RawMessage `json:"schema_version"`
	Schema              json.RawMessage `json:"schema"`
}

type v3Header struct {
	Name  *string `json:"name"`
	Value *string `json:"value"` // base64; null = no value
}

type v3Record struct {
	PartitionID *int32          `json:"partition_id"`
	Headers     []v3Header      `json:"headers"`
	Key         *v3Data         `json:"key"`
	Value       *v3Data         `json:"value"`
	Timestamp   json.RawMessage `json:"timestamp"` // validated, not used
}

type v3Size struct {
	Type string `json:"type"`
	Size int    `json:"size"`
}

type v3Response struct {
	ErrorCode   int     `json:"error_code"`
	ClusterID   string  `json:"cluster_id"`
	TopicName   string  `json:"topic_name"`
	PartitionID int32   `json:"partition_id"`
	Offset      int64   `json:"offset"`
	Timestamp   string  `json:"timestamp,omitempty"`
	Key         *v3Size `json:"key,omitempty"`
	Value       *v3Size `json:"value,omitempty"`
}

// restProxyV3 serves /v3/clusters... (rest follows "/v3/clusters").
func (a *Agent) restProxyV3(ctx *fasthttp.RequestCtx, rest, method string) *rpError {
	if rest == "" || rest == "/" {
		if method != http.MethodGet {
			return rpMethodNotAllowed(ctx, "GET")
		}
		a.rpListClusters(ctx)
		return nil
	}
	cid, tail, _ := strings.Cut(rest[1:], "/")
	if tail == "" {
		if method != http.MethodGet {
			return rpMethodNotAllowed(ctx, "GET")
		}
		if cid != a.opts.RestProxyCluster {
			return rpNotFound()
		}
		rpWrite(ctx, http.StatusOK, rpV3Media, a.rpCluster(ctx))
		return nil
	}
	topic, ok := strings.CutPrefix(tail, "topics/")
	topic, ok2 := strings.CutSuffix(topic, "/records")
	if !ok || !ok2 || strings.Contains(topic, "/") {
		return rpNotFound()
	}
	if method != http.MethodPost {
		return rpMethodNotAllowed(ctx, "POST")
	}
	if cid != a.opts.RestProxyCluster {
		return rpErrorf(http.StatusNotFound, http.StatusNotFound, "not_found", "Cluster %s cannot be found.", cid)
	}
	if mt := mediaType(ctx.Request.Header.ContentType()); mt != rpV3Media {
		return rpErrorf(http.StatusUnsupportedMediaType, http.StatusUnsupportedMediaType, "unsupported_media_type",
			"HTTP 415 Unsupported Media Type (sluice: %q; use %s)", mt, rpV3Media)
	}
	body := ctx.PostBody()
	if len(bytes.TrimSpace(body)) == 0 {
		return rpErrorf(http.StatusUnprocessableEntity, rpInvalidPayload, "bad_request", "Payload error. Null input provided. Data is required.")
	}
	var r v3Record
	if e := rpDecode(body, &r); e != nil {
		return e
	}
	m := Msg{Topic: topic, Partition: sink.NoPartition}
	if r.PartitionID != nil {
		if *r.PartitionID < 0 {
			return rpErrorf(http.StatusBadRequest, http.StatusBadRequest, "bad_request", "partition_id must be greater than or equal to 0")
		}
		m.Partition = *r.PartitionID
	}
	if !validInstant(r.Timestamp) {
		return rpErrorf(http.StatusBadRequest, http.StatusBadRequest, "bad_request", "timestamp %s is not an ISO-8601 instant or epoch number", r.Timestamp)
	}
	if len(r.Headers) > a.opts.MaxHeaders {
		return rpErrorf(http.StatusBadRequest, http.StatusBadRequest, "bad_request", "more than %d headers", a.opts.MaxHeaders)
	}
	for i, h := range r.Headers {
		switch {
		case h.Name == nil || *h.Name == "":
			return rpErrorf(http.StatusBadRequest, http.StatusBadRequest, "bad_request", "headers[%d].name is required", i)
		case strings.EqualFold(*h.Name, sink.IDHeader):
			return rpErrorf(http.StatusBadRequest, http.StatusBadRequest, "bad_request", "headers[%d]: %s is set by sluice", i, sink.IDHeader)
		}
		hv := []byte{}
		if h.Value != nil {
			b, err := decodeB64(*h.Value)
			if err != nil {
				return rpErrorf(http.StatusBadRequest, http.StatusBadRequest, "bad_request", "headers[%d].value is not valid base64", i)
			}
			hv = b
		}
		m.Headers = append(m.Headers, sink.Header{Key: *h.Name, Value: hv})
	}
	var keyType, valueType string
	var e *rpError
	if m.Key, keyType, e = v3Convert(r.Key, "key"); e != nil {
		return e
	}
	if m.Value, valueType, e = v3Convert(r.Value, "value"); e != nil {
		return e
	}
	if m.Value == nil {
		return rpErrorf(http.StatusUnprocessableEntity, rpInvalidPayload, "bad_request",
			"Payload error. value is null or missing: sluice cannot spool null values (tombstones)")
	}
	if len(m.Value) > a.opts.MaxMessageBytes {
		return rpErrorf(http.StatusRequestEntityTooLarge, http.StatusRequestEntityTooLarge, "too_large",
			"value of %d bytes is larger than the %d bytes allowed", len(m.Value), a.opts.MaxMessageBytes)
	}
	if !sink.ValidTopic(topic) {
		return rpFromNative(errorf(http.StatusBadRequest, "bad_topic", "invalid topic name %q", topic))
	}
	msgs := []Msg{m}
	res, e := a.rpProduce(ctx, msgs)
	if e != nil {
		return e
	}
	if res[0].err != nil {
		// Delivery failed or timed out after the record was spooled: not a
		// rejected request, so not counted as one.
		rpReplyError(ctx, rpV3Media, res[0].err)
		return nil
	}
	out := v3Response{
		ErrorCode: http.StatusOK, ClusterID: cid, TopicName: topic,
		PartitionID: res[0].partition, Offset: res[0].offset,
		Timestamp: javaInstant(time.Unix(0, msgs[0].Time)),
		Value:     &v3Size{Type: valueType, Size: len(m.Value)},
	}
	if m.Key != nil {
		out.Key = &v3Size{Type: keyType, Size: len(m.Key)}
	}
	rpWrite(ctx, http.StatusOK, rpV3Media, out)
	return nil
}

// v3Convert serializes a v3 key or value by its type. nil = null or absent.
func v3Convert(d *v3Data, field string) ([]byte, string, *rpError) {
	if d == nil {
		return nil, "", nil
	}
	if d.Type == nil {
		// kafka-rest asks the schema registry about data without a type.
		return nil, "", rpErrorf(http.StatusUnprocessableEntity, rpInvalidPayload, "bad_request", "%s", rpNoSchemaHint)
	}
	typ := strings.ToUpper(*d.Type)
	switch typ {
	case "AVRO", "JSONSCHEMA", "PROTOBUF":
		return nil, "", rpErrorf(http.StatusUnprocessableEntity, rpInvalidPayload, "bad_request", "%s", rpNoSchemaHint)
	case "BINARY", "JSON", "STRING":
	default:
		return nil, "", rpErrorf(http.StatusBadRequest, http.StatusBadRequest, "bad_request", "%s.type %q is not one of BINARY, JSON, STRING", field, *d.Type)
	}
	for _, f := range []struct {
		name string
		v    json.RawMessage
	}{{"subject", d.Subject}, {"subject_name_strategy", d.SubjectNameStrategy}, {"schema_id", d.SchemaID}, {"schema_version", d.SchemaVersion}, {"schema", d.Schema}} {
		if f.v != nil {
			return nil, "", rpErrorf(http.StatusBadRequest, http.StatusBadRequest, "bad_request", "'type=%s' cannot be used with '%s'.", typ, f.name)
		}
	}
	if isNull(d.Data) {
		return nil, typ, nil
	}
	if typ == "JSON" {
		return d.Data, typ, nil
	}
	var s string
	if err := json.Unmarshal(d.Data, &s); err != nil {
		return nil, "", rpErrorf(http.StatusUnprocessableEntity, rpInvalidPayload, "bad_request", "Payload error. %s.data=%s is not a string.", field, d.Data)
	}
	if typ == "STRING" {
		return []byte(s), typ, nil
	}
	b, err := decodeB64(s)
	if err != nil {
		return nil, "", rpErrorf(http.StatusUnprocessableEntity, rpInvalidPayload, "bad_request", "Payload error. %s.data=%s is not a valid base64 string.", field, d.Data)
	}
	return b, typ, nil
}

// validInstant accepts what Jackson reads as an Instant: an ISO-8601
// string or an epoch number; absent or null too.
func validInstant(v json.RawMessage) bool {
	if isNull(v) {
		return true
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		_, err := time.Parse(time.RFC3339Nano, s)
		return err == nil
	}
	var n json.Number
	return json.Unmarshal(v, &n) == nil
}

// javaInstant formats t as Java's Instant.toString at millisecond
// precision, the Kafka timestamp's: 2021-02-05T19:14:42.123Z.
func javaInstant(t time.Time) string {
	t = t.UTC().Truncate(time.Millisecond)
	if t.Nanosecond() == 0 {
		return t.Format("2006-01-02T15:04:05Z")
	}
	return t.Format("2006-01-02T15:04:05.000Z")
}

// The cluster resource of GET /v3/clusters (kafka-rest ClusterData).

type v3Related struct {
	Related string `json:"related"`
}

type v3Cluster struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Self         string `json:"self"`
		ResourceName string `json:"resource_name"`
	} `json:"metadata"`
	ClusterID              string     `json:"cluster_id"`
	Controller             *v3Related `json:"controller"`
	Acls                   v3Related  `json:"acls"`
	Brokers                v3Related  `json:"brokers"`
	BrokerConfigs          v3Related  `json:"broker_configs"`
	ConsumerGroups         v3Related  `json:"consumer_groups"`
	Topics                 v3Related  `json:"topics"`
	PartitionReassignments v3Related  `json:"partition_reassignments"`
}

func (a *Agent) rpCluster(ctx *fasthttp.RequestCtx) v3Cluster {
	id := a.opts.RestProxyCluster
	self := "http://" + string(ctx.Host()) + "/v3/clusters/" + id
	c := v3Cluster{Kind: "KafkaCluster", ClusterID: id}
	c.Metadata.Self, c.Metadata.ResourceName = self, "crn:///kafka="+id
	c.Acls.Related = self + "/acls"
	c.Brokers.Related = self + "/brokers"
	c.BrokerConfigs.Related = self + "/broker-configs"
	c.ConsumerGroups.Related = self + "/consumer-groups"
	c.Topics.Related = self + "/topics"
	c.PartitionReassignments.Related = self + "/topics/-/partitions/-/reassignment"
	return c
}

func (a *Agent) rpListClusters(ctx *fasthttp.RequestCtx) {
	var list struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Self string  `json:"self"`
			Next *string `json:"next"`
		} `json:"metadata"`
		Data []v3Cluster `json:"data"`
	}
	list.Kind = "KafkaClusterList"
	list.Metadata.Self = "http://" + string(ctx.Host()) + "/v3/clusters"
	list.Data = []v3Cluster{a.rpCluster(ctx)}
	rpWrite(ctx, http.StatusOK, rpV3Media, list)
}
