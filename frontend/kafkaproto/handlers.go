package kafkaproto

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluiceio/sluice/agent"
)

// API keys served.
const (
	keyProduce         = 0
	keyFetch           = 1
	keyMetadata        = 3
	keyFindCoordinator = 10
	keyApiVersions     = 18
	keyInitProducerID  = 22
)

// apiRange is an advertised version range.
type apiRange struct{ min, max int16 }

// advertised is the ApiVersions table. librdkafka turns features on from
// it: record format v2 needs Fetch v4, gzip/snappy/lz4 need Produce v0
// (librdkafka #4956; Kafka 4.0 advertises it again, KAFKA-18659), lz4
// needs FindCoordinator, zstd needs Fetch v10, idempotence needs
// InitProducerId. Fetch and FindCoordinator are advertised for those gates
// and answered with authorization errors. Produce stays below v12, so that
// clients never switch to topic ids.
var advertised = map[int16]apiRange{
	keyProduce:         {0, 11},
	keyFetch:           {4, 12},
	keyMetadata:        {0, 12},
	keyFindCoordinator: {0, 3},
	keyApiVersions:     {0, 3},
	keyInitProducerID:  {0, 4},
}

func apiName(key int16) string {
	if r := kmsg.RequestForKey(key); r != nil {
		return kmsg.NameForKey(key)
	}
	return "key " + strconv.Itoa(int(key))
}

// response is what handlers return: a kmsg response.
type response interface {
	IsFlexible() bool
	AppendTo([]byte) []byte
}

// flexibleFrom is the first flexible version of each served request.
var flexibleFrom = map[int16]int16{
	keyProduce: 9, keyFetch: 12, keyMetadata: 9, keyFindCoordinator: 3, keyApiVersions: 3, keyInitProducerID: 2,
	keySaslAuthenticate: 2,
}

// parseHeader decodes a request header: key, version, correlation id,
// client id, and for flexible requests a tag section.
func parseHeader(frame []byte) (header, []byte, error) {
	r := reader{b: frame}
	h := header{key: r.int16(), version: r.int16(), corr: r.int32()}
	if cid := r.nullableString(); cid != nil {
		h.clientID = *cid
	}
	if f, ok := flexibleFrom[h.key]; ok && h.version >= f {
		r.skipTags()
	}
	if r.bad {
		return h, nil, errMalformed
	}
	return h, r.b, nil
}

// errUnsupported closes the connection: an API or version not advertised.
var errUnsupported = errors.New("API or version not supported")

// supported is the version range of an API this server advertises.
func (s *Server) supported(key int16) (apiRange, bool) {
	if rng, ok := advertised[key]; ok {
		return rng, true
	}
	if s.opts.Token != "" {
		rng, ok := saslAPIs[key]
		return rng, ok
	}
	return apiRange{}, false
}

// handle answers one request; a nil response means none is sent (acks=0).
// With errAnswerThenClose the response is sent and the connection closed.
func (s *Server) handle(c net.Conn, st *session, h header, body []byte) (response, error) {
	s.m.request(h.key)
	rng, ok := s.supported(h.key)
	if !ok {
		return nil, errUnsupported
	}
	if !st.authed && !preAuth(h.key) {
		return nil, errUnauthenticated
	}
	if h.key == keyApiVersions {
		return s.apiVersions(h), nil
	}
	if h.version < rng.min || h.version > rng.max {
		return nil, errUnsupported
	}
	if h.key == keyProduce {
		return s.produce(h, body)
	}
	req := kmsg.RequestForKey(h.key)
	req.SetVersion(h.version)
	if err := req.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	switch req := req.(type) {
	case *kmsg.MetadataRequest:
		return s.metadata(c, req)
	case *kmsg.InitProducerIDRequest:
		return s.initProducerID(req), nil
	case *kmsg.FindCoordinatorRequest:
		resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		msg := "sluice accepts produce requests only: no consumer groups"
		if req.CoordinatorType == 1 {
			resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
			msg = "sluice does not support transactions"
		}
		resp.ErrorMessage = &msg
		resp.NodeID = -1
		return resp, nil
	case *kmsg.FetchRequest:
		return s.fetch(req), nil
	case *kmsg.SASLHandshakeRequest:
		return s.saslHandshake(st, req)
	case *kmsg.SASLAuthenticateRequest:
		return s.saslAuthenticate(st, req)
	}
	return nil, errUnsupported
}

// apiVersions answers with the advertised table; a version above ours
// gets a v0 response with UNSUPPORTED_VERSION and our ApiVersions range,
// which makes clients retry at a version we serve (KIP-511).
func (s *Server) apiVersions(h header) response {
	resp := kmsg.NewPtrApiVersionsResponse()
	rng, _ := s.supported(keyApiVersions)
	if h.version > rng.max || h.version < 0 {
		resp.Version = 0
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = keyApiVersions, rng.min, rng.max
		resp.ApiKeys = append(resp.ApiKeys, k)
		return resp
	}
	resp.Version = h.version
	var keys []int16
	for k := range advertised {
		keys = append(keys, k)
	}
	if s.opts.Token != "" {
		for k := range saslAPIs {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, key := range keys {
		rng, _ := s.supported(key)
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = key, rng.min, rng.max
		resp.ApiKeys = append(resp.ApiKeys, k)
	}
	return resp
}

// partitions is the partition count advertised for topic, and whether the
// producer's partition is forwarded as chosen; errNoCount when a mirrored
// count is not known.
func (s *Server) partitions(topic string) (n int32, explicit bool, err error) {
	if n, ok := s.opts.Partitions[topic]; ok && n > 0 {
		return n, true, nil
	}
	if s.opts.DefaultPartitions > 0 {
		return s.opts.DefaultPartitions, true, nil
	}
	if s.opts.Mirror {
		n, explicit, err := s.mir.count(s.acc, topic)
		if err != nil {
			s.log.Debug("kafka listener: partition count unknown", "topic", topic, "err", err)
		}
		return n, explicit, err
	}
	return 1, false, nil
}

// maxMetadataPartitions bounds the partitions one Metadata response lists
// (about 40 bytes each): a request naming many topics with many partitions
// closes the connection instead of making a response hundreds of times its
// size.
const maxMetadataPartitions = 1 << 16

// errMetadataTooLarge closes the connection: see maxMetadataPartitions.
var errMetadataTooLarge = errors.New("metadata response over the partition limit")

// metadata advertises the listener as the only broker (node 0, the address
// the client reached), leader of every partition of every topic a sink
// takes. A topic named several times is answered once, as a broker does.
func (s *Server) metadata(c net.Conn, req *kmsg.MetadataRequest) (response, error) {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	host, port := "127.0.0.1", int32(0)
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		host, port = a.IP.String(), int32(a.Port)
	}
	b := kmsg.NewMetadataResponseBroker()
	b.NodeID, b.Host, b.Port = 0, host, port
	resp.Brokers = append(resp.Brokers, b)
	cluster := "sluice"
	resp.ClusterID = &cluster
	resp.ControllerID = 0

	var names []string
	if req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0) {
		for t := range s.opts.Partitions {
			if s.acc.Routable(t) == nil {
				names = append(names, t)
			}
		}
		slices.Sort(names)
	} else {
		seen := make(map[string]bool, min(len(req.Topics), 64))
		for _, t := range req.Topics {
			if t.Topic != nil && !seen[*t.Topic] {
				seen[*t.Topic] = true
				names = append(names, *t.Topic)
			}
		}
	}
	listed := 0
	for _, name := range names {
		t := kmsg.NewMetadataResponseTopic()
		t.Topic = &name
		if err := s.acc.Routable(name); err != nil {
			t.ErrorCode = kerr.UnknownTopicOrPartition.Code
			if errors.Is(err, agent.ErrBadTopic) {
				t.ErrorCode = kerr.InvalidTopicException.Code
			}
			resp.Topics = append(resp.Topics, t)
			continue
		}
		n, _, err := s.partitions(name)
		if err != nil {
			t.ErrorCode = kerr.LeaderNotAvailable.Code
			resp.Topics = append(resp.Topics, t)
			continue
		}
		if listed += int(n); listed > maxMetadataPartitions {
			return nil, fmt.Errorf("%w: over %d partitions for %d topics", errMetadataTooLarge, maxMetadataPartitions, len(names))
		}
		for i := range n {
			p := kmsg.NewMetadataResponseTopicPartition()
			p.Partition, p.Leader, p.LeaderEpoch = i, 0, 0
			p.Replicas, p.ISR = []int32{0}, []int32{0}
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp, nil
}

// initProducerID hands out a new producer id (epoch 0) for an idempotent
// producer, as Kafka does for a producer without a transactional id, and
// refuses transactional producers.
func (s *Server) initProducerID(req *kmsg.InitProducerIDRequest) response {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp
	}
	id, err := s.pids.newID()
	if err != nil {
		s.log.Error("kafka listener: cannot reserve producer ids", "err", err)
		resp.ErrorCode = kerr.KafkaStorageError.Code
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}

// fetch refuses every partition: sluice is not a consumer endpoint.
func (s *Server) fetch(req *kmsg.FetchRequest) response {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	for _, rt := range req.Topics {
		t := kmsg.NewFetchResponseTopic()
		t.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			p := kmsg.NewFetchResponseTopicPartition()
			p.Partition = rp.Partition
			p.ErrorCode = kerr.TopicAuthorizationFailed.Code
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp
}
