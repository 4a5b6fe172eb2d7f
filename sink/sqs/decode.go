package sqs

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sluiceio/sluice/sink"
)

// Decode turns a message received from a queue this sink writes to back
// into the sluice message (ID, Topic, Key, Value, Headers): the inverse of
// what Write sends, for consumers written in Go and for tests. Receive with
// MessageAttributeNames ["All"]. Headers that travelled as attributes of
// their own come back sorted by name (SQS keeps no order among
// attributes); packed headers keep their order.
func Decode(m types.Message) (sink.Message, error) {
	out := sink.Message{Partition: sink.NoPartition}
	attrs := m.MessageAttributes
	str := func(name string) string {
		if a, ok := attrs[name]; ok {
			return aws.ToString(a.StringValue)
		}
		return ""
	}
	out.ID = str(AttrID)
	out.Topic = str(AttrTopic)
	if a, ok := attrs[AttrKey]; ok {
		if aws.ToString(a.DataType) == typeBinary {
			out.Key = a.BinaryValue
		} else {
			out.Key = []byte(aws.ToString(a.StringValue))
		}
	}
	body := aws.ToString(m.Body)
	switch enc := str(AttrEncoding); enc {
	case "":
		out.Value = []byte(body)
	case EncodingEmpty:
		out.Value = []byte{}
	case EncodingBase64:
		v, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			return out, fmt.Errorf("sqs: decode base64 body: %w", err)
		}
		out.Value = v
	default:
		return out, fmt.Errorf("sqs: unknown %s %q", AttrEncoding, enc)
	}
	if a, ok := attrs[AttrHeaders]; ok {
		var packed []packedHeader
		if err := json.Unmarshal([]byte(aws.ToString(a.StringValue)), &packed); err != nil {
			return out, fmt.Errorf("sqs: decode %s: %w", AttrHeaders, err)
		}
		for _, p := range packed {
			v := []byte(p.Value)
			if p.ValueB64 != "" {
				b, err := base64.StdEncoding.DecodeString(p.ValueB64)
				if err != nil {
					return out, fmt.Errorf("sqs: decode header %s: %w", p.Name, err)
				}
				v = b
			}
			out.Headers = append(out.Headers, sink.Header{Key: p.Name, Value: v})
		}
		return out, nil
	}
	var names []string
	for n := range attrs {
		switch n {
		case AttrID, AttrTopic, AttrKey, AttrEncoding:
		default:
			names = append(names, n)
		}
	}
	slices.SortFunc(names, strings.Compare)
	for _, n := range names {
		a := attrs[n]
		v := a.BinaryValue
		if aws.ToString(a.DataType) != typeBinary {
			v = []byte(aws.ToString(a.StringValue))
		}
		out.Headers = append(out.Headers, sink.Header{Key: n, Value: v})
	}
	return out, nil
}
