package kafkaproto

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
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

// TestLargeProduceRequestFromFranzGo: real clients work unchanged but for
// the address, and spool pressure is an error or a wait, never a hang. A
// franz-go producer with a backlog over many partitions packs full batches
// into one Produce request up to its BrokerMaxWriteBytes (100 MiB, a
// broker's socket.request.max.bytes); a listener that closes connections
// for frames over 16 MiB makes it send the same request forever (franz-go
// has no delivery timeout by default). Every record must be acknowledged.
func TestLargeProduceRequestFromFranzGo(t *testing.T) {
	const parts = 24
	e := start(t, t.TempDir(), Options{Partitions: map[string]int32{"t": parts}})
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.srv.Addr()), kgo.DefaultProduceTopic("t"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerLinger(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	value := bytes.Repeat([]byte("x"), 90<<10)
	for p := range parts {
		for range 10 { // ~900 KiB per partition: one full batch each
			recs = append(recs, &kgo.Record{Partition: int32(p), Value: value})
		}
	}
	done := make(chan error, 1)
	go func() { done <- cl.ProduceSync(context.Background(), recs...).FirstErr() }()
	select {
	case err := <-done:
		cl.Close()
		if err != nil {
			t.Fatalf("produce: %v", err)
		}
	case <-time.After(60 * time.Second):
		bad := e.srv.m.badRequests.Get()
		cl.Close() // fails the buffered records, ends ProduceSync
		<-done
		t.Fatalf("%d records of %d KiB over %d partitions (~%d MiB) got no answer in 60 s; the listener closed %d connections",
			len(recs), len(value)>>10, parts, len(recs)*len(value)>>20, bad)
	}
	e.sink.wait(t, len(recs))
}

// TestProduceFrameOverBudget: a Produce request larger than the whole
// in-flight budget is read once it is alone, and spooled in parts of at
// most MaxRequestBytes of messages: every batch is acknowledged.
func TestProduceFrameOverBudget(t *testing.T) {
	const parts = 6
	e := start(t, t.TempDir(), Options{MaxRequestBytes: 1 << 20, MaxInflightBytes: 4 << 20, Partitions: map[string]int32{"t": parts}})
	value := string(make([]byte, 900<<10))
	req := produceReq("t", 0, -1, recordBatch(-1, -1, 0, 0, value))
	for p := int32(1); p < parts; p++ {
		addPartition(req, "t", p, recordBatch(-1, -1, 0, 0, value))
	}
	if n := len(frame(req, 1)); n <= 4<<20 {
		t.Fatalf("frame of %d bytes is within the budget", n)
	}
	for p, code := range produceCodes(t, e.srv.Addr(), req)["t"] {
		if code != 0 {
			t.Errorf("partition %d: %v", p, kerr.ErrorForCode(code))
		}
	}
	e.sink.wait(t, parts)
}
