package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluiceio/sluice/sink"
)

// singleRecordBatchSize is exactly what the broker measures: a message of
// that size passes a topic limit of that size and fails one byte below.
func TestSingleRecordBatchSizeIsExact(t *testing.T) {
	c, addr := newCluster(t)
	w := newWriter(t, addr, Options{})
	for i, m := range []sink.Message{
		{ID: "a", Value: make([]byte, 100)},
		{ID: "b", Key: []byte("key"), Value: make([]byte, 300), Headers: []sink.Header{{Key: "x", Value: []byte("y")}, {Key: "nil"}}},
		{ID: "c-with-a-longer-id", Key: []byte{}, Value: make([]byte, 5000)},
		{ID: "d", Key: make([]byte, 200), Headers: []sink.Header{{Key: sink.IDHeader, Value: []byte("kept")}}},
	} {
		m.Partition = sink.NoPartition
		m.Time = time.Now()
		size := singleRecordBatchSize(&m, m.ID != "" && !hasIDHeader(&m))
		for _, limit := range []int{size, size - 1} {
			topic := fmt.Sprintf("exact-%d-%d", i, limit)
			if err := c.CreateTopic(topic, 1, map[string]string{"max.message.bytes": strconv.Itoa(limit)}); err != nil {
				t.Fatal(err)
			}
			m.Topic = topic
			var err error
			for attempt := 0; attempt < 100; attempt++ { // until the new topic is in the metadata
				if err = w.Write(context.Background(), []sink.Message{m}); err == nil || sink.Reason(err) != ReasonUnknownTopic {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			var be *sink.BatchError
			switch {
			case limit == size && err != nil:
				t.Errorf("message %d of %d bytes, limit %d: %v", i, size, limit, err)
			case limit < size && (!errors.As(err, &be) || !sink.IsPermanent(be.Errs[0]) || sink.Reason(be.Errs[0]) != ReasonTooLarge):
				t.Errorf("message %d of %d bytes, limit %d: %v, want Permanent too_large", i, size, limit, err)
			}
		}
	}
}

// Every codec round-trips through franz-go's consumer too.
func TestCompressionRoundTrip(t *testing.T) {
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			_, addr := newCluster(t, kfake.SeedTopics(3, "z"))
			w := newWriter(t, addr, Options{Compression: codec})
			msgs := testMsgs("z", codec, 100, 9)
			mustWrite(t, w, msgs)
			recs := byID(t, consume(t, addr, "z", len(msgs)))
			for _, m := range msgs {
				r, ok := recs[m.ID]
				if !ok || string(r.Value) != string(m.Value) || r.Offset != m.DeliveredOffset {
					t.Fatalf("%s: not read back intact", m.ID)
				}
				if want := map[string]uint8{"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[codec]; r.Attrs.CompressionType() != want {
					t.Fatalf("%s: compression type %d, want %d", m.ID, r.Attrs.CompressionType(), want)
				}
			}
		})
	}
}

func TestTopicMapAndPrefix(t *testing.T) {
	_, addr := newCluster(t, kfake.SeedTopics(1, "prod.orders-v2", "prod.clicks"))
	w := newWriter(t, addr, Options{TopicMap: map[string]string{"orders": "orders-v2"}, TopicPrefix: "prod."})
	mustWrite(t, w, append(testMsgs("orders", "o", 2, 1), testMsgs("clicks", "c", 3, 1)...))
	consume(t, addr, "prod.orders-v2", 2)
	consume(t, addr, "prod.clicks", 3, kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
}

func TestRecordSizeBoundCoversKafkaGo(t *testing.T) {
	for _, m := range []sink.Message{
		{},
		{ID: "x", Key: []byte("k"), Value: make([]byte, 10)},
		{ID: "y", Value: make([]byte, 300), Headers: []sink.Header{{Key: "a", Value: make([]byte, 200)}}},
	} {
		addID := m.ID != ""
		km := (&converter{}).convert(&m, "t", time.Now())
		kafkaGo := 4 + 1 + 1 + 4 + len(km.Key) + 4 + len(km.Value) + 8 + 1 // Message.totalSize, header count
		for _, h := range km.Headers {
			kafkaGo += varintLen(int64(len(h.Key))) + len(h.Key) + varintLen(int64(len(h.Value))) + len(h.Value)
		}
		if b := recordSizeBound(&m, addID); b < kafkaGo {
			t.Errorf("bound %d < kafka-go's %d for %+v", b, kafkaGo, m)
		}
		if b, s := recordSizeBound(&m, addID), singleRecordBatchSize(&m, addID)-recordBatchOverhead; b < s {
			t.Errorf("bound %d < record size %d", b, s)
		}
	}
}

// The size arithmetic against an independent encoder (franz-go's kmsg).
func FuzzRecordSizes(f *testing.F) {
	f.Add([]byte("key"), false, []byte("value"), false, "h", []byte("v"), false, "id-1", int64(0), int32(0))
	f.Add([]byte(nil), true, make([]byte, 300), false, "", []byte(nil), true, "", int64(-5), int32(999))
	f.Add([]byte{}, false, []byte{}, true, "x", make([]byte, 70000), false, sink.IDHeader, int64(1)<<40, int32(1)<<30)
	f.Fuzz(func(t *testing.T, key []byte, keyNil bool, value []byte, valueNil bool,
		hk string, hv []byte, hvNil bool, id string, tsDelta int64, offDelta int32) {
		if keyNil {
			key = nil
		} else if key == nil {
			key = []byte{}
		}
		if valueNil {
			value = nil
		} else if value == nil {
			value = []byte{}
		}
		if hvNil {
			hv = nil
		} else if hv == nil {
			hv = []byte{}
		}
		if offDelta < 0 {
			offDelta = -offDelta
		}
		m := sink.Message{ID: id, Key: key, Value: value, Headers: []sink.Header{{Key: hk, Value: hv}}}
		addID := m.ID != "" && !hasIDHeader(&m)

		rec := kmsg.Record{Key: key, Value: value, Headers: []kmsg.Header{{Key: hk, Value: hv}}}
		if addID {
			rec.Headers = append(rec.Headers, kmsg.Header{Key: sink.IDHeader, Value: []byte(id)})
		}
		encode := func(ts int64, off int32) []byte {
			r := rec
			r.TimestampDelta64, r.OffsetDelta = ts, off
			r.Length = int32(len(r.AppendTo(nil)) - 1) // body: all after a 1-byte zero length
			return r.AppendTo(nil)
		}
		single := encode(0, 0)
		batch := kmsg.RecordBatch{Magic: 2, NumRecords: 1, Records: single}
		if got, want := singleRecordBatchSize(&m, addID), len(batch.AppendTo(nil)); got != want {
			t.Fatalf("singleRecordBatchSize = %d, kmsg encodes %d", got, want)
		}
		if tsDelta < -(1<<62) || tsDelta > 1<<62 {
			tsDelta /= 4
		}
		if got, want := recordSizeBound(&m, addID), len(encode(tsDelta, offDelta)); got < want {
			t.Fatalf("recordSizeBound = %d < kmsg's %d", got, want)
		}
	})
}
