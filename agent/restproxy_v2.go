package agent

// REST Proxy API v2: POST /topics/{topic}[/partitions/{p}].

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/sluiceio/sluice/sink"
)

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
	// A body of empty records costs far more decoded than its size: the
	// records (the decoder's slice at twice its final size while it
	// grows) and their messages are reserved in the in-flight budget
	// before decoding, as the native batch's messages are.
	n := topArrayElems(ctx.PostBody())
	if e := a.holdMore(ctx, n*(2*int64(unsafe.Sizeof(v2Record{}))+msgCost)); e != nil {
		return rpFromNative(e)
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

// topArrayElems is an upper bound of the elements of the arrays that are
// members of body's top-level object (a v2 request's records), found
// without decoding: the commas directly inside each such array, plus one.
// Strings are skipped.
func topArrayElems(body []byte) int64 {
	var n int64
	depth, inArray := 0, false // inArray: the container at depth 2 is an array
	inStr, esc := false, false
	for _, c := range body {
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			depth++
			if depth == 2 {
				inArray = c == '['
				if inArray {
					n++
				}
			}
		case c == '}' || c == ']':
			depth--
		case c == ',':
			if depth == 2 && inArray {
				n++
			}
		}
	}
	return n
}
