package agent

// REST Proxy API v3: clusters and single-record produce.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluiceio/sluice/sink"
)

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
