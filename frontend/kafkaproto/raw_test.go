package kafkaproto

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawConn speaks the protocol by hand, to send what well-behaved clients
// never send.
type rawConn struct {
	t    *testing.T
	c    net.Conn
	corr int32
}

func dial(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c}
}

// frame encodes req with a request header, size-prefixed.
func frame(req kmsg.Request, corr int32) []byte {
	b := make([]byte, 4, 256)
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "test"...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func (r *rawConn) send(b []byte) {
	r.t.Helper()
	_ = r.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// request sends req and decodes the response into resp.
func (r *rawConn) request(req kmsg.Request, resp kmsg.Response) {
	r.t.Helper()
	r.corr++
	r.send(frame(req, r.corr))
	r.read(resp, r.corr)
}

func (r *rawConn) read(resp kmsg.Response, corr int32) {
	r.t.Helper()
	body, err := r.readFrame()
	if err != nil {
		r.t.Fatalf("read response: %v", err)
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != corr {
		r.t.Fatalf("correlation id %d, want %d", got, corr)
	}
	body = body[4:]
	if resp.IsFlexible() && resp.Key() != 18 {
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		r.t.Fatalf("decode response: %v", err)
	}
}

// ioBound bounds a raw read that should succeed: only a failure waits it
// out (10 s was too short for a large request under -race on a loaded
// 2-core machine).
const ioBound = time.Minute

func (r *rawConn) readFrame() ([]byte, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(ioBound))
	var size [4]byte
	if _, err := io.ReadFull(r.c, size[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err := io.ReadFull(r.c, body)
	return body, err
}

// closed reports whether the server closed the connection within ioBound
// (EOF or a reset), sending nothing first.
func (r *rawConn) closed() bool { return closedWithin(r, ioBound) }

// wait reads one byte within d: whether something came, and whether the
// server closed the connection instead (neither: the deadline passed).
func (r *rawConn) wait(d time.Duration) (data, closed bool) {
	_ = r.c.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	_, err := r.c.Read(b[:])
	var ne net.Error
	return err == nil, err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// closedWithin reports whether the server closed the connection within d,
// sending nothing first.
func closedWithin(r *rawConn, d time.Duration) bool {
	_, closed := r.wait(d)
	return closed
}

// recordBatch builds a magic-2 batch of values with a valid CRC32C.
func recordBatch(pid int64, epoch int16, seq int32, attrs int16, values ...string) []byte {
	var recs []byte
	for i, v := range values {
		rec := kmsg.Record{OffsetDelta: int32(i), Value: []byte(v)}
		body := rec.AppendTo(nil)
		// AppendTo writes Length as given (0): recompute it.
		inner := body[1:]
		recs = binary.AppendVarint(recs, int64(len(inner)))
		recs = append(recs, inner...)
	}
	b := kmsg.RecordBatch{
		Magic: 2, Attributes: attrs, LastOffsetDelta: int32(len(values) - 1),
		FirstTimestamp: 1700000000000, MaxTimestamp: 1700000000000,
		ProducerID: pid, ProducerEpoch: epoch, FirstSequence: seq, NumRecords: int32(len(values)), Records: recs,
	}
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], crc32.MakeTable(crc32.Castagnoli)))
	return out
}

// produceReq is a Produce v7 request of one batch to topic/partition.
func produceReq(topic string, partition int32, acks int16, batch []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 7, acks, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// produce sends one batch and returns the partition's answer.
func (r *rawConn) produce(topic string, partition int32, batch []byte) kmsg.ProduceResponseTopicPartition {
	r.t.Helper()
	req := produceReq(topic, partition, -1, batch)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	r.request(req, resp)
	return resp.Topics[0].Partitions[0]
}
