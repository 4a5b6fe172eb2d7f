package kafkaproto

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluiceio/sluice/agent"
	"github.com/sluiceio/sluice/sink"
)

// TestHostileInput: what misbehaving peers get. Each case runs on its own
// connection; afterwards the listener still serves a well-formed request.
func TestHostileInput(t *testing.T) {
	e := start(t, t.TempDir(), Options{MaxRequestBytes: 64 << 10, Partitions: map[string]int32{"t": 1}})
	addr := e.srv.Addr()
	apiVersions := func(v int16) *kmsg.ApiVersionsRequest {
		r := kmsg.NewPtrApiVersionsRequest()
		r.Version, r.ClientSoftwareName, r.ClientSoftwareVersion = v, "test", "1"
		return r
	}
	closes := map[string][]byte{
		"huge length":    {0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0},
		"negative size":  {0xff, 0xff, 0xff, 0xff},
		"tiny frame":     {0, 0, 0, 2, 0, 18},
		"unknown key":    frame(&kmsg.DescribeACLsRequest{Version: 1}, 1),
		"produce v12":    frame(&kmsg.ProduceRequest{Version: 12}, 1),
		"fetch v3":       frame(&kmsg.FetchRequest{Version: 3}, 1),
		"metadata v13":   frame(&kmsg.MetadataRequest{Version: 13}, 1),
		"truncated body": func() []byte { b := frame(apiVersions(3), 1); binary.BigEndian.PutUint32(b, uint32(len(b))); return b }(),
		"garbage produce": func() []byte {
			b := frame(produceReq("t", 0, -1, recordBatch(-1, -1, 0, 0, "v")), 1)
			return append(b[:20], bytes.Repeat([]byte{0xff}, len(b)-20)...)
		}(),
		"produce over MaxProduceBytes": {0x06, 0x40, 0x00, 0x01, 0, 0, 0, 7},
		"large control request": func() []byte {
			b := make([]byte, 4+maxControlBytes+1)
			binary.BigEndian.PutUint32(b, uint32(maxControlBytes+1))
			binary.BigEndian.PutUint16(b[4:], keyMetadata)
			return b
		}(),
	}
	for name, b := range closes {
		t.Run(name, func(t *testing.T) {
			c := dial(t, addr)
			c.send(b)
			if name == "truncated body" {
				c.c.(*net.TCPConn).CloseWrite()
			}
			if !c.closed() {
				t.Error("connection not closed")
			}
		})
	}

	t.Run("api versions above ours", func(t *testing.T) {
		c := dial(t, addr)
		resp := kmsg.NewPtrApiVersionsResponse() // v0 decoding
		c.corr++
		c.send(frame(apiVersions(9), c.corr))
		c.read(resp, c.corr)
		if resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) != 1 || resp.ApiKeys[0].MaxVersion != 3 {
			t.Errorf("got error %d keys %+v", resp.ErrorCode, resp.ApiKeys)
		}
	})

	gz := func(n int) []byte {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write(make([]byte, n))
		w.Close()
		return b.Bytes()
	}
	corrupt := recordBatch(-1, -1, 0, 0, "v")
	corrupt[len(corrupt)-1] ^= 1
	bomb := recordBatch(-1, -1, 0, codecGzip, "v")
	bomb = append(bomb[:batchHeaderSize], gz(1<<20)...) // a 1 MiB expansion, over the 64 KiB limit
	binary.BigEndian.PutUint32(bomb[8:], uint32(len(bomb)-12))
	binary.BigEndian.PutUint32(bomb[17:], crc32c(bomb[21:]))
	badCount := recordBatch(-1, -1, 0, 0, "v")
	binary.BigEndian.PutUint32(badCount[57:], 1<<30)
	binary.BigEndian.PutUint32(badCount[23:], 1<<30-1)
	binary.BigEndian.PutUint32(badCount[17:], crc32c(badCount[21:]))
	partial := recordBatch(-1, -1, 0, 0, "v")
	partial = partial[:len(partial)-1]
	refused := []struct {
		name      string
		topic     string
		partition int32
		batch     []byte
		want      *kerr.Error
	}{
		{"crc mismatch", "t", 0, corrupt, kerr.CorruptMessage},
		{"decompression bomb", "t", 0, bomb, kerr.MessageTooLarge},
		{"uncompressed batch over the limit", "t", 0, recordBatch(-1, -1, 0, 0, string(make([]byte, 64<<10))), kerr.MessageTooLarge},
		{"record count over the bytes", "t", 0, badCount, kerr.CorruptMessage},
		{"length mismatch", "t", 0, partial, kerr.CorruptMessage},
		{"two batches", "t", 0, append(recordBatch(-1, -1, 0, 0, "a"), recordBatch(-1, -1, 0, 0, "b")...), kerr.CorruptMessage},
		{"magic 1", "t", 0, func() []byte { b := recordBatch(-1, -1, 0, 0, "v"); b[16] = 1; return b }(), kerr.UnsupportedForMessageFormat},
		{"transactional batch", "t", 0, recordBatch(7, 0, 0, attrTransactional, "v"), kerr.InvalidTxnState},
		{"control batch", "t", 0, recordBatch(7, 0, 0, attrControl, "v"), kerr.InvalidTxnState},
		{"unknown partition", "t", 1, recordBatch(-1, -1, 0, 0, "v"), kerr.UnknownTopicOrPartition},
		{"bad topic", "a b", 0, recordBatch(-1, -1, 0, 0, "v"), kerr.InvalidTopicException},
		{"empty batch", "t", 0, nil, kerr.CorruptMessage},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			if got := c.produce(tc.topic, tc.partition, tc.batch); got.ErrorCode != tc.want.Code {
				t.Errorf("got %v, want %v", kerr.ErrorForCode(got.ErrorCode), tc.want)
			}
		})
	}

	t.Run("acks 0 gets no response", func(t *testing.T) {
		c := dial(t, addr)
		c.send(frame(produceReq("t", 0, 0, recordBatch(-1, -1, 0, 0, "acks0")), 100))
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.Version = 3
		c.send(frame(apiVersions(3), 101))
		c.read(resp, 101) // the next frame answers request 101, not 100
	})

	c := dial(t, addr)
	if got := c.produce("t", 0, recordBatch(-1, -1, 0, 0, "still serving")); got.ErrorCode != 0 {
		t.Fatalf("after the hostile input: %v", kerr.ErrorForCode(got.ErrorCode))
	}
	e.sink.wait(t, 2) // acks0 and "still serving"
}

func crc32c(b []byte) uint32 {
	return crc32.Checksum(b, castagnoli)
}

// funcAcceptor is an agent.Acceptor made of functions.
type funcAcceptor struct {
	accept     func(msgs []agent.Message) (agent.Accepted, error)
	maxMessage int // 0: 1 MiB
}

func (f funcAcceptor) MaxMessageBytes() int {
	if f.maxMessage > 0 {
		return f.maxMessage
	}
	return 1 << 20
}

func (f funcAcceptor) Accept(_ context.Context, msgs []agent.Message, _ agent.AcceptOptions) (agent.Accepted, error) {
	return f.accept(msgs)
}

func (funcAcceptor) TopicInfo(context.Context, string) (agent.TopicInfo, error) {
	return agent.TopicInfo{}, agent.ErrNoPartitions
}

func (funcAcceptor) ScanMeta(time.Time, func(uint64, string, []byte)) error { return nil }
func (funcAcceptor) LastSeq() uint64                                        { return 0 }

func (f funcAcceptor) Check(topic string) error { return f.Routable(topic) }

func (funcAcceptor) Routable(topic string) error {
	if !sink.ValidTopic(topic) {
		return fmt.Errorf("%w: %q", agent.ErrBadTopic, topic)
	}
	return nil
}

// FuzzRequest feeds arbitrary frames (after the size prefix) to the request
// decoder and handlers: they answer or refuse, never panic, and encode
// whatever they answer.
func FuzzRequest(f *testing.F) {
	seeds := []kmsg.Request{
		&kmsg.ApiVersionsRequest{Version: 3, ClientSoftwareName: "a", ClientSoftwareVersion: "1"},
		&kmsg.MetadataRequest{Version: 12},
		&kmsg.MetadataRequest{Version: 4, Topics: []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("t")}}},
		&kmsg.InitProducerIDRequest{Version: 4},
		&kmsg.FindCoordinatorRequest{Version: 2, CoordinatorKey: "tx", CoordinatorType: 1},
		&kmsg.FetchRequest{Version: 12, Topics: []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0}}}}},
		produceReq("t", 0, -1, recordBatch(5, 0, 0, 0, "a", "b")),
		produceReq("t", 0, 1, recordBatch(-1, -1, 0, codecGzip, "a")),
		func() kmsg.Request {
			r := produceReq("t", 0, -1, recordBatch(-1, -1, 0, 0, "a"))
			r.Version = 11
			return r
		}(),
		&kmsg.SASLHandshakeRequest{Version: 1, Mechanism: "PLAIN"},
		&kmsg.SASLAuthenticateRequest{Version: 2, SASLAuthBytes: []byte("\x00u\x00token")},
	}
	for _, r := range seeds {
		f.Add(frame(r, 1)[4:])
	}
	dir := f.TempDir()
	o := Options{StateDir: dir, Logger: quiet(), MaxRequestBytes: 1 << 20, Token: "token"}
	o.setDefaults()
	pids, err := openProducers(dir, 100)
	if err != nil {
		f.Fatal(err)
	}
	dec, err := newDecompressor(o.MaxRequestBytes)
	if err != nil {
		f.Fatal(err)
	}
	s := &Server{opts: o, log: o.Logger, pids: pids, dec: dec, m: newServerMetrics(o.Metrics), decoded: newBudget(o.MaxInflightBytes),
		acc: funcAcceptor{accept: func(msgs []agent.Message) (agent.Accepted, error) {
			return agent.Accepted{IDs: make([]string, len(msgs)), First: 1}, nil
		}}}
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	f.Fuzz(func(t *testing.T, frame []byte) {
		h, body, err := parseHeader(frame)
		if err != nil {
			return
		}
		// Authenticated, or not yet with a handshake made (odd lengths):
		// the SASL handlers are reached in both states.
		st := &session{authed: len(frame)%2 == 0, handshake: len(frame)%2 == 1}
		resp, err := s.handle(c1, st, h, body)
		if (err == nil || errors.Is(err, errAnswerThenClose)) && resp != nil {
			resp.AppendTo(nil)
		}
	})
}

// serveWith runs a listener over acc (no agent) until the test ends.
func serveWith(t *testing.T, acc agent.Acceptor, o Options) *Server {
	t.Helper()
	o.Addr, o.StateDir, o.Logger = "127.0.0.1:0", t.TempDir(), quiet()
	srv, err := Listen(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, acc) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return srv
}

// TestAcceptErrors: what a producer gets when the spool refuses: "come
// back later" errors are retriable, spool full carries a throttle time.
func TestAcceptErrors(t *testing.T) {
	cases := []struct {
		err      error
		want     *kerr.Error
		throttle bool
	}{
		{agent.ErrSpoolFull, kerr.NotEnoughReplicas, true},
		{agent.ErrDraining, kerr.NotEnoughReplicas, true},
		{agent.ErrSpoolTimeout, kerr.RequestTimedOut, false},
		{agent.ErrDiskFull, kerr.KafkaStorageError, false},
		{agent.ErrIO, kerr.KafkaStorageError, false},
		{agent.ErrTooLarge, kerr.MessageTooLarge, false},
	}
	for _, tc := range cases {
		t.Run(tc.want.Message, func(t *testing.T) {
			srv := serveWith(t, funcAcceptor{accept: func([]agent.Message) (agent.Accepted, error) {
				return agent.Accepted{}, fmt.Errorf("%w: test", tc.err)
			}}, Options{ThrottleMillis: 250})
			c := dial(t, srv.Addr())
			req := produceReq("t", 0, -1, recordBatch(-1, -1, 0, 0, "v"))
			resp := req.ResponseKind().(*kmsg.ProduceResponse)
			c.request(req, resp)
			p := resp.Topics[0].Partitions[0]
			if p.ErrorCode != tc.want.Code || (resp.ThrottleMillis == 250) != tc.throttle {
				t.Errorf("got %v throttle %d", kerr.ErrorForCode(p.ErrorCode), resp.ThrottleMillis)
			}
			if tc.want.Retriable != (tc.want != kerr.MessageTooLarge) {
				t.Errorf("%v retriable=%v", tc.want, tc.want.Retriable)
			}
		})
	}
}

// TestUnknownKeysShareOneSeries: requests with keys no Kafka version
// defines are counted under api="unknown", not one series per key a peer
// makes up.
func TestUnknownKeysShareOneSeries(t *testing.T) {
	e := start(t, t.TempDir(), Options{})
	for _, key := range []uint16{9999, 12345, 30000, 0xffff} {
		c := dial(t, e.srv.Addr())
		b := binary.BigEndian.AppendUint32(nil, 10)
		b = binary.BigEndian.AppendUint16(b, key)
		b = append(b, 0, 0, 0, 0, 0, 1, 0xff, 0xff) // version, correlation id, null client id
		c.send(b)
		if !c.closed() {
			t.Fatalf("key %d: connection not closed", key)
		}
	}
	var out bytes.Buffer
	e.srv.m.set.WritePrometheus(&out)
	if !strings.Contains(out.String(), `sluice_kafka_listener_requests_total{api="unknown"} 4`) {
		t.Errorf("no unknown series counting 4:\n%s", out.String())
	}
	if n := strings.Count(out.String(), "sluice_kafka_listener_requests_total{"); n != 1 {
		t.Errorf("%d request series, want 1:\n%s", n, out.String())
	}
}
