package sqs

import (
	"bytes"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sluiceio/sluice/sink"
)

func testConfig(t *testing.T, url string) config {
	t.Helper()
	c, err := Options{URL: url}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func roundTrip(t *testing.T, c *config, m sink.Message) (entry, sink.Message) {
	t.Helper()
	en, err := c.encode(&m)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	got, err := Decode(types.Message{Body: en.e.MessageBody, MessageAttributes: en.e.MessageAttributes})
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return en, got
}

func TestEncodeRoundTrip(t *testing.T) {
	c := testConfig(t, "https://sqs.eu-west-1.amazonaws.com/123456789012/orders")
	many := make([]sink.Header, 9)
	for i := range many {
		many[i] = sink.Header{Key: "h" + string(rune('a'+i)), Value: []byte("v")}
	}
	cases := []struct {
		name      string
		m         sink.Message
		encoding  string
		packed    bool
		keyBinary bool
	}{
		{"text", sink.Message{Key: []byte("k"), Value: []byte(`{"a":1}`), Headers: []sink.Header{{Key: "trace", Value: []byte("t1")}}}, "", false, false},
		{"binary body", sink.Message{Value: []byte{0, 1, 0xff}}, EncodingBase64, false, false},
		{"control char", sink.Message{Value: []byte("a\x01b")}, EncodingBase64, false, false},
		{"U+FFFE", sink.Message{Value: []byte("a\uFFFEb")}, EncodingBase64, false, false},
		{"empty", sink.Message{Value: []byte{}}, EncodingEmpty, false, false},
		{"binary key and header", sink.Message{Key: []byte{0xff}, Value: []byte("x"), Headers: []sink.Header{{Key: "bin", Value: []byte{0, 0xc3}}}}, "", false, true},
		{"repeated header", sink.Message{Value: []byte("x"), Headers: []sink.Header{{Key: "d", Value: []byte("1")}, {Key: "d", Value: []byte("2")}}}, "", true, false},
		{"empty header value", sink.Message{Value: []byte("x"), Headers: []sink.Header{{Key: "e", Value: []byte{}}}}, "", true, false},
		{"invalid name", sink.Message{Value: []byte("x"), Headers: []sink.Header{{Key: "bad name", Value: []byte("1")}}}, "", true, false},
		{"AWS. prefix", sink.Message{Value: []byte("x"), Headers: []sink.Header{{Key: "AWS.trace", Value: []byte("1")}}}, "", true, false},
		{"reserved name", sink.Message{Value: []byte("x"), Headers: []sink.Header{{Key: AttrTopic, Value: []byte("1")}}}, "", true, false},
		{"too many", sink.Message{Key: []byte("k"), Value: []byte("x"), Headers: many}, "", true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.m.ID, tc.m.Topic = "id-1", "orders"
			en, got := roundTrip(t, &c, tc.m)
			attrs := en.e.MessageAttributes
			if len(attrs) > MaxAttributes {
				t.Fatalf("%d attributes", len(attrs))
			}
			if e := aws.ToString(attrs[AttrEncoding].StringValue); e != tc.encoding {
				t.Fatalf("encoding %q, want %q", e, tc.encoding)
			}
			if _, p := attrs[AttrHeaders]; p != tc.packed {
				t.Fatalf("packed %v, want %v", p, tc.packed)
			}
			if tc.keyBinary && aws.ToString(attrs[AttrKey].DataType) != typeBinary {
				t.Fatal("binary key not a Binary attribute")
			}
			if !validText([]byte(aws.ToString(en.e.MessageBody))) || aws.ToString(en.e.MessageBody) == "" {
				t.Fatalf("body %q is not SQS text", aws.ToString(en.e.MessageBody))
			}
			if got.ID != "id-1" || got.Topic != "orders" || !bytes.Equal(got.Key, tc.m.Key) || !bytes.Equal(got.Value, tc.m.Value) {
				t.Fatalf("round trip: %+v", got)
			}
			if len(got.Headers) != len(tc.m.Headers) {
				t.Fatalf("headers %v, want %v", got.Headers, tc.m.Headers)
			}
			for i := range got.Headers {
				if got.Headers[i].Key != tc.m.Headers[i].Key || !bytes.Equal(got.Headers[i].Value, tc.m.Headers[i].Value) {
					t.Fatalf("headers %v, want %v", got.Headers, tc.m.Headers)
				}
			}
			// Size as SQS counts it: body plus name, type and value of every attribute.
			size := len(aws.ToString(en.e.MessageBody))
			for n, a := range attrs {
				size += len(n) + len(aws.ToString(a.DataType)) + len(aws.ToString(a.StringValue)) + len(a.BinaryValue)
			}
			if size != en.size {
				t.Fatalf("size %d, counted %d", en.size, size)
			}
		})
	}
}

func TestEncodeFIFO(t *testing.T) {
	c := testConfig(t, "https://sqs.eu-west-1.amazonaws.com/123456789012/orders.fifo")
	if !c.fifo {
		t.Fatal("not FIFO")
	}
	for _, tc := range []struct {
		key, id, group, dedup string
	}{
		{"customer-7", "3f9a-1-1", "customer-7", "3f9a-1-1"},
		{"", "3f9a-1-2", DefaultGroupID, "3f9a-1-2"},
		{"ünï", "x y", hashedID([]byte("ünï")), hashedID([]byte("x y"))},
		{strings.Repeat("k", 129), strings.Repeat("i", 129), hashedID([]byte(strings.Repeat("k", 129))), hashedID([]byte(strings.Repeat("i", 129)))},
	} {
		m := sink.Message{ID: tc.id, Topic: "t", Value: []byte("v")}
		if tc.key != "" {
			m.Key = []byte(tc.key)
		}
		en, err := c.encode(&m)
		if err != nil {
			t.Fatal(err)
		}
		g, d := aws.ToString(en.e.MessageGroupId), aws.ToString(en.e.MessageDeduplicationId)
		if g != tc.group || d != tc.dedup || !ValidGroupID(g) || !ValidGroupID(d) {
			t.Errorf("key %q id %q: group %q dedup %q, want %q %q", tc.key, tc.id, g, d, tc.group, tc.dedup)
		}
	}
	std := testConfig(t, "https://sqs.eu-west-1.amazonaws.com/123456789012/orders")
	en, _ := std.encode(&sink.Message{ID: "a", Topic: "t", Key: []byte("k"), Value: []byte("v")})
	if en.e.MessageGroupId != nil || en.e.MessageDeduplicationId != nil {
		t.Fatal("standard queue got FIFO ids")
	}
}

func TestEncodeTooLarge(t *testing.T) {
	c := testConfig(t, "https://sqs.eu-west-1.amazonaws.com/123456789012/orders")
	m := sink.Message{ID: "a", Topic: "t", Value: bytes.Repeat([]byte("x"), DefaultRequestBytes)}
	_, err := c.encode(&m)
	if !sink.IsPermanent(err) || sink.Reason(err) != ReasonTooLarge {
		t.Fatalf("encode = %v, want Permanent too_large", err)
	}
	// Binary bodies count as their base64.
	m.Value = bytes.Repeat([]byte{0xff}, DefaultRequestBytes*3/4-100)
	if _, err := c.encode(&m); err != nil {
		t.Fatalf("just under the budget in base64: %v", err)
	}
	m.Value = bytes.Repeat([]byte{0xff}, DefaultRequestBytes*3/4+10)
	if _, err := c.encode(&m); sink.Reason(err) != ReasonTooLarge {
		t.Fatalf("over the budget in base64: %v", err)
	}
}

func TestChunk(t *testing.T) {
	c := testConfig(t, "https://sqs.eu-west-1.amazonaws.com/123456789012/orders")
	op := &writeOp{w: &Writer{cfg: c}}
	sizes := []int{100, 100, 200 << 10, 60 << 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10}
	op.entries = make([]entry, len(sizes))
	var idxs []int
	for i, s := range sizes {
		op.entries[i].size = s
		idxs = append(idxs, i)
	}
	chunks := op.chunk(idxs)
	for _, ch := range chunks {
		total := 0
		for _, i := range ch {
			total += sizes[i]
		}
		if len(ch) > MaxBatchEntries || total > c.RequestBytes {
			t.Fatalf("chunk %v: %d entries, %d bytes", ch, len(ch), total)
		}
	}
	if len(chunks) != 3 {
		t.Fatalf("chunks %v, want 3", chunks)
	}
}

func TestParseQueueURL(t *testing.T) {
	for _, tc := range []struct {
		url, name, region string
		fifo, bad         bool
	}{
		{"https://sqs.eu-west-1.amazonaws.com/123456789012/orders", "orders", "eu-west-1", false, false},
		{"https://sqs.us-east-1.amazonaws.com/123456789012/orders.fifo", "orders.fifo", "us-east-1", true, false},
		{"https://eu-central-1.queue.amazonaws.com/1/q", "q", "eu-central-1", false, false},
		{"https://sqs.cn-north-1.amazonaws.com.cn/1/q", "q", "cn-north-1", false, false},
		{"http://127.0.0.1:9324/000000000000/q", "q", "", false, false},
		{"https://vpce-1a2b-x.sqs.us-west-2.vpce.amazonaws.com/1/q", "q", "us-west-2", false, false},
		{"sqs://x/1/q", "", "", false, true},
		{"https://sqs.eu-west-1.amazonaws.com/q", "", "", false, true},
		{"https://sqs.eu-west-1.amazonaws.com/1/bad name", "", "", false, true},
	} {
		name, fifo, region, err := ParseQueueURL(tc.url)
		if (err != nil) != tc.bad || name != tc.name || fifo != tc.fifo || region != tc.region {
			t.Errorf("%s: %q %v %q %v", tc.url, name, fifo, region, err)
		}
	}
}
