package kafkaproto

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluiceio/sluice/agent"
)

// gzipBatch builds a magic-2 gzip batch of one record whose value is n
// zero bytes (a few hundred bytes on the wire).
func gzipBatch(n int) []byte {
	rec := kmsg.Record{Value: make([]byte, n)}
	body := rec.AppendTo(nil)
	inner := body[1:] // AppendTo writes Length as given (0): recompute it
	recs := binary.AppendVarint(nil, int64(len(inner)))
	recs = append(recs, inner...)
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write(recs)
	w.Close()
	b := kmsg.RecordBatch{
		Magic: 2, Attributes: codecGzip, LastOffsetDelta: 0,
		FirstTimestamp: 1700000000000, MaxTimestamp: 1700000000000,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: 1, Records: z.Bytes(),
	}
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint32(out[17:], crc32c(out[21:]))
	return out
}

// TestDecompressedRequestBounded: memory is bounded per request, also
// when one small Produce request carries one compressed batch for each of
// many partitions. A ~110 KiB request of 100 gzip batches that each
// decompress to ~1 MiB (MaxRequestBytes) must never have the listener
// hold more decoded bytes at once than MaxInflightBytes: it spools the
// request in parts, and every batch is still acknowledged.
func TestDecompressedRequestBounded(t *testing.T) {
	const (
		maxRequest  = 1 << 20
		maxInflight = 4 << 20
		parts       = 100
	)
	var mu sync.Mutex
	var held, heap int64
	srv := serveWith(t, funcAcceptor{accept: func(msgs []agent.Message) (agent.Accepted, error) {
		n := 0
		for _, m := range msgs {
			n += len(m.Key) + len(m.Value)
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		mu.Lock()
		held = max(held, int64(n))
		heap = max(heap, int64(ms.HeapAlloc))
		mu.Unlock()
		return agent.Accepted{IDs: make([]string, len(msgs)), First: 1}, nil
	}}, Options{MaxRequestBytes: maxRequest, MaxInflightBytes: maxInflight, Partitions: map[string]int32{"t": parts}})

	batch := gzipBatch(maxRequest - 4096) // decompresses within MaxRequestBytes
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 7, -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "t"
	for i := range parts {
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = int32(i), batch
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	frameBytes := len(frame(req, 1))

	c := dial(t, srv.Addr())
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	c.request(req, resp)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("request frame %d bytes; most bytes handed to Accept at once %d; largest heap then %d", frameBytes, held, heap)
	if held > maxInflight {
		t.Fatalf("a %d-byte request (MaxRequestBytes %d) made the listener hold %d decompressed bytes at once, over MaxInflightBytes %d",
			frameBytes, maxRequest, held, maxInflight)
	}
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != 0 {
			t.Fatalf("partition %d: %v", p.Partition, kerr.ErrorForCode(p.ErrorCode))
		}
	}
}

// TestRepeatedPartitionRefused: a partition named twice in one Produce
// request gets INVALID_REQUEST (both times), as Kafka answers duplicates;
// the other partitions of the request are spooled.
func TestRepeatedPartitionRefused(t *testing.T) {
	e := start(t, t.TempDir(), Options{Partitions: map[string]int32{"t": 2}})
	req := produceReq("t", 0, -1, recordBatch(-1, -1, 0, 0, "first"))
	for _, rp := range []struct {
		p int32
		v string
	}{{0, "again"}, {1, "other"}} {
		p := kmsg.NewProduceRequestTopicPartition()
		p.Partition, p.Records = rp.p, recordBatch(-1, -1, 0, 0, rp.v)
		req.Topics[0].Partitions = append(req.Topics[0].Partitions, p)
	}
	c := dial(t, e.srv.Addr())
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	c.request(req, resp)
	ps := resp.Topics[0].Partitions
	if len(ps) != 3 {
		t.Fatalf("%d partitions answered, want 3", len(ps))
	}
	for i, want := range []int16{kerr.InvalidRequest.Code, kerr.InvalidRequest.Code, 0} {
		if ps[i].ErrorCode != want {
			t.Errorf("answer %d (partition %d): %v, want %v", i, ps[i].Partition, kerr.ErrorForCode(ps[i].ErrorCode), kerr.ErrorForCode(want))
		}
	}
	if got := e.sink.wait(t, 1); string(got[0].Value) != "other" {
		t.Errorf("spooled %q, want \"other\"", got[0].Value)
	}
}

// TestMetadataResponseBounded: memory per request is bounded (requests
// other than Produce are at most 256 KiB). A Metadata request naming the
// same topic many times is answered once per topic, as a broker does, not
// once per name with every partition each time (a ~120 KiB request would
// make a response hundreds of times larger, per connection).
func TestMetadataResponseBounded(t *testing.T) {
	const maxInflight = 4 << 20
	e := start(t, t.TempDir(), Options{MaxInflightBytes: maxInflight, Partitions: map[string]int32{"t": 64}})
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 4
	for range 40000 {
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr("t")
		req.Topics = append(req.Topics, mt)
	}
	reqBytes := len(frame(req, 1))
	if reqBytes > maxControlBytes {
		t.Fatalf("request of %d bytes over the control limit", reqBytes)
	}
	c := dial(t, e.srv.Addr())
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	c.request(req, resp)
	t.Logf("a %d-byte Metadata request got %d topics", reqBytes, len(resp.Topics))
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 64 {
		t.Fatalf("a Metadata request naming one topic %d times got %d topics, want 1 (of 64 partitions)", len(req.Topics), len(resp.Topics))
	}
}

// TestMetadataPartitionLimit: a Metadata request naming distinct topics
// whose partitions together are over maxMetadataPartitions closes the
// connection instead of building the response; one under it is answered.
func TestMetadataPartitionLimit(t *testing.T) {
	const perTopic = 1000
	e := start(t, t.TempDir(), Options{DefaultPartitions: perTopic})
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 4
	for i := range maxMetadataPartitions/perTopic + 1 {
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(fmt.Sprintf("t%d", i))
		req.Topics = append(req.Topics, mt)
	}
	c := dial(t, e.srv.Addr())
	c.corr++
	c.send(frame(req, c.corr))
	if !c.closed() {
		t.Fatalf("a Metadata request for %d partitions was answered", len(req.Topics)*perTopic)
	}
	req.Topics = req.Topics[:maxMetadataPartitions/perTopic]
	c = dial(t, e.srv.Addr())
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	c.request(req, resp)
	if len(resp.Topics) != len(req.Topics) {
		t.Fatalf("%d topics answered, want %d", len(resp.Topics), len(req.Topics))
	}
}
