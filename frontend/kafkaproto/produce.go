package kafkaproto

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluiceio/sluice/agent"
	"github.com/sluiceio/sluice/sink"
)

// pending is one partition's batch on its way into the spool.
type pending struct {
	resp     *kmsg.ProduceResponseTopicPartition
	tp       topicPartition
	batch    batch
	producer *producer // nil: not idempotent
	first    int       // index of its first message in the request's messages
	held     int64     // bytes of its keys and values
}

// produce validates every partition's batch, checks idempotent sequences,
// spools the accepted batches of the request in one Accept (one group
// commit) and answers with local offsets: the spool sequence of each
// batch's first record. acks=0 gets no response.
//
// A request whose decoded batches do not fit in the in-flight budget
// beside those of other requests is spooled in several Accepts (produceRun).
func (s *Server) produce(h header, body []byte) (response, error) {
	req, err := parseProduce(h.version, body)
	if err != nil {
		return nil, err
	}
	// A partition named twice in one request is refused (both times), as
	// Kafka refuses duplicates with INVALID_REQUEST: each would be
	// decoded and held, and its idempotent sequences are ambiguous.
	seen := make(map[topicPartition]int)
	for _, rt := range req.topics {
		for _, rp := range rt.partitions {
			seen[topicPartition{rt.name, rp.index}]++
		}
	}
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = h.version
	run := &produceRun{s: s}
	for _, rt := range req.topics {
		t := kmsg.NewProduceResponseTopic()
		t.Topic = rt.name
		t.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.partitions))
		// Checked per topic, so that a topic whose sink is at its backlog
		// cap fails its own partitions only.
		routeErr := s.acc.Check(rt.name)
		var n int32
		var countErr error
		if routeErr == nil {
			n, _, countErr = s.partitions(rt.name)
		}
		for i, rp := range rt.partitions {
			p := &t.Partitions[i]
			p.Default()
			p.Partition, p.BaseOffset, p.LogAppendTime, p.LogStartOffset = rp.index, -1, -1, -1
			tp := topicPartition{rt.name, rp.index}
			code := int16(0)
			switch {
			case req.transactionalID != nil:
				code = kerr.TransactionalIDAuthorizationFailed.Code
			case req.acks != 0 && req.acks != 1 && req.acks != -1:
				code = kerr.InvalidRequiredAcks.Code
			case seen[tp] > 1:
				code = kerr.InvalidRequest.Code
			case errors.Is(routeErr, agent.ErrBadTopic):
				code = kerr.InvalidTopicException.Code
			case errors.Is(routeErr, agent.ErrSpoolFull):
				code = kerr.NotEnoughReplicas.Code
			case routeErr != nil:
				code = kerr.UnknownTopicOrPartition.Code
			case countErr != nil:
				code = kerr.LeaderNotAvailable.Code
			case rp.index < 0 || rp.index >= n:
				code = kerr.UnknownTopicOrPartition.Code
			case !run.room():
				code = kerr.NotEnoughReplicas.Code // shutting down
			}
			if code != 0 {
				s.setError(p, code)
				continue
			}
			b, err := decodeBatch(rp.records, s.dec)
			if err != nil {
				switch {
				case errors.Is(err, errTransactions):
					s.setError(p, kerr.InvalidTxnState.Code)
				case errors.Is(err, errOldFormat):
					s.setError(p, kerr.UnsupportedForMessageFormat.Code)
				case errors.Is(err, errTooBig):
					s.setError(p, kerr.MessageTooLarge.Code)
				default:
					s.setError(p, kerr.CorruptMessage.Code)
				}
				s.log.Debug("kafka listener: batch refused", "topic", rt.name, "partition", rp.index, "err", err)
				continue
			}
			// Checked here, so that the record fails its own batch only
			// (Accept would fail the whole request with it).
			if size, max := largestValue(&b), s.acc.MaxMessageBytes(); size > max {
				s.setError(p, kerr.MessageTooLarge.Code)
				s.log.Debug("kafka listener: record over the message size limit", "topic", rt.name, "partition", rp.index, "bytes", size, "max", max)
				continue
			}
			if i, err := badID(&b); err != nil {
				s.setError(p, kerr.InvalidRecord.Code)
				msg := fmt.Sprintf("record %d: %v", i, err)
				p.ErrorMessage = &msg
				s.log.Debug("kafka listener: batch refused", "topic", rt.name, "partition", rp.index, "err", msg)
				continue
			}
			if max := s.upstreamMax(rt.name); max > 0 {
				if size := largestRecord(&b); size > max {
					s.setError(p, kerr.MessageTooLarge.Code)
					s.log.Debug("kafka listener: record over the topic's max.message.bytes upstream", "topic", rt.name, "bytes", size, "max", max)
					continue
				}
			}
			s.m.batch(b.codec)
			run.add(&pending{resp: p, tp: tp, batch: b})
		}
		resp.Topics = append(resp.Topics, t)
	}
	run.flush()
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode == kerr.NotEnoughReplicas.Code {
				resp.ThrottleMillis = s.opts.ThrottleMillis
			}
		}
	}
	if req.acks == 0 {
		return nil, nil
	}
	return resp, nil
}

// produceRun holds the decoded batches of one Produce request until they
// are spooled. Decoded bytes (batch.cost) count in the listener's decoded
// budget (MaxInflightBytes over all connections): before each batch is
// decoded there must be room for one more of MaxRequestBytes, else the
// batches held so far are spooled (one Accept) and let go, and the run
// waits, holding nothing, for others to let go of theirs. A request thus
// holds at most the budget and one batch, however many partitions it
// names, and never waits while it holds decoded bytes (no deadlock).
//
// The batches are also spooled in parts of at most MaxRequestBytes of
// keys and values (one batch may be that large), which Accept counts in
// the agent's in-flight budget: a request larger than that budget (up to
// MaxProduceBytes) still gets spooled.
type produceRun struct {
	s      *Server
	todo   []*pending
	held   int64 // s.decoded bytes the batches of todo hold
	values int64 // bytes of the keys and values of todo
}

// room makes room for decoding one more batch; false when the listener
// is closing.
func (r *produceRun) room() bool {
	need := int64(r.s.opts.MaxRequestBytes)
	if r.s.decoded.fits(need) {
		return true
	}
	r.flush()
	return r.s.decoded.wait(need)
}

func (r *produceRun) add(p *pending) {
	if r.values+p.batch.values > int64(r.s.opts.MaxRequestBytes) {
		r.flush()
	}
	r.s.decoded.add(p.batch.cost)
	r.held += p.batch.cost
	r.values += p.batch.values
	r.todo = append(r.todo, p)
}

// flush spools the batches held and lets go of them.
func (r *produceRun) flush() {
	if len(r.todo) > 0 {
		r.s.spool(r.todo)
	}
	r.s.decoded.release(r.held)
	r.todo, r.held, r.values = nil, 0, 0
}

// spool runs the idempotence checks and appends the surviving batches.
func (s *Server) spool(todo []*pending) {
	// Lock each idempotent producer of the request (in id order: no lock
	// cycles) over check, append and record.
	var locked, got []*producer
	defer func() { // after the unlocks below (deferred later, run first)
		for _, pr := range got {
			s.pids.release(pr)
		}
	}()
	for _, p := range todo {
		if b := p.batch; b.producerID >= 0 {
			p.producer = s.pids.get(b.producerID)
			got = append(got, p.producer)
			if !containsProducer(locked, p.producer) {
				locked = append(locked, p.producer)
			}
		}
	}
	sort.Slice(locked, func(i, j int) bool { return locked[i].id < locked[j].id })
	for _, pr := range locked {
		pr.mu.Lock()
		defer pr.mu.Unlock()
	}

	var msgs []agent.Message
	var appended []*pending
	held := int64(0)
	for _, p := range todo {
		b := &p.batch
		if pr := p.producer; pr != nil {
			dup, offset, err := pr.check(p.tp, b.producerEpoch, b.firstSeq, int32(len(b.records)))
			switch {
			case errors.Is(err, errStaleEpoch):
				s.setError(p.resp, kerr.InvalidProducerEpoch.Code)
				continue
			case errors.Is(err, errOutOfOrder):
				s.setError(p.resp, kerr.OutOfOrderSequenceNumber.Code)
				continue
			case dup:
				s.m.duplicates.Inc()
				p.resp.BaseOffset = offset
				continue
			}
		}
		_, explicit, _ := s.partitions(p.tp.topic)
		part := sink.NoPartition
		if explicit {
			part = p.tp.partition
		}
		p.first = len(msgs)
		for i := range b.records {
			r := &b.records[i]
			m := agent.Message{Topic: p.tp.topic, Key: r.key, Value: r.value, Headers: r.headers, Partition: part}
			if i == 0 && p.producer != nil {
				m.Meta = encodeBatchMeta(p.tp.partition, b.producerID, b.producerEpoch, b.firstSeq, int32(len(b.records)))
			}
			if r.timestamp >= 0 {
				m.Time = time.UnixMilli(r.timestamp)
			}
			msgs = append(msgs, m)
			p.held += int64(len(r.key) + len(r.value))
		}
		held += p.held
		appended = append(appended, p)
	}
	if len(msgs) == 0 {
		return
	}
	// An idempotent producer retries a timed-out request with the same
	// sequence: the outcome must be known, and the window recorded, before
	// its producer lock is let go, or a retry of a batch that was spooled
	// after all would be spooled again.
	o := agent.AcceptOptions{HeldBytes: held, WaitOutcome: len(locked) > 0}
	switch err := s.accept(msgs, appended, o); {
	case err == nil:
	case len(appended) > 1 && partitionError(err, appended):
		// One batch's error must not fail its neighbours: each on its own.
		for _, p := range appended {
			o.HeldBytes = p.held
			if err := s.accept(msgs[p.first:p.first+len(p.batch.records)], []*pending{p}, o); err != nil {
				s.refuse([]*pending{p}, err)
			}
		}
	default:
		s.refuse(appended, err)
	}
}

// accept spools msgs, the messages of the batches ps (in order), in one
// Accept and records their offsets; on an error nothing was recorded and it
// is returned.
func (s *Server) accept(msgs []agent.Message, ps []*pending, o agent.AcceptOptions) error {
	acc, err := s.acc.Accept(context.Background(), msgs, o)
	if err != nil {
		return err
	}
	first := ps[0].first
	for _, p := range ps {
		base := int64(acc.First) + int64(p.first-first)
		p.resp.BaseOffset = base
		if pr := p.producer; pr != nil {
			pr.record(p.tp, p.batch.producerEpoch, p.batch.firstSeq, int32(len(p.batch.records)), base)
		}
	}
	s.m.records.Add(len(msgs))
	return nil
}

// refuse answers every batch of ps with Accept's error err.
func (s *Server) refuse(ps []*pending, err error) {
	code := acceptCode(err)
	for _, p := range ps {
		s.setError(p.resp, code)
	}
	if code == kerr.NotEnoughReplicas.Code || code == kerr.KafkaStorageError.Code {
		s.log.Debug("kafka listener: produce refused", "err", err)
	} else {
		s.log.Warn("kafka listener: produce refused", "err", err)
	}
}

// partitionError reports whether Accept's error for the batches ps may be
// some batches' alone (a message too large, a topic refused, a topic's
// sink at its backlog cap when ps span several topics): the batches are
// then spooled one by one, so that only those at fault get it.
func partitionError(err error, ps []*pending) bool {
	switch {
	case errors.Is(err, agent.ErrTooLarge), errors.Is(err, agent.ErrBadTopic), errors.Is(err, agent.ErrNoRoute), errors.Is(err, agent.ErrBadID):
		return true
	case errors.Is(err, agent.ErrSpoolFull):
		for _, p := range ps {
			if p.tp.topic != ps[0].tp.topic {
				return true
			}
		}
	}
	return false
}

func containsProducer(ps []*producer, p *producer) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// acceptCode maps Accept's errors onto Kafka error codes. Retriable ones
// are those a producer retries on its own: NOT_ENOUGH_REPLICAS (spool
// full, draining: with throttle time), REQUEST_TIMED_OUT (outcome
// unknown), KAFKA_STORAGE_ERROR (disk full, i/o).
func acceptCode(err error) int16 {
	switch {
	case errors.Is(err, agent.ErrSpoolFull), errors.Is(err, agent.ErrDraining):
		return kerr.NotEnoughReplicas.Code
	case errors.Is(err, agent.ErrSpoolTimeout):
		return kerr.RequestTimedOut.Code
	case errors.Is(err, agent.ErrTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, agent.ErrBadTopic):
		return kerr.InvalidTopicException.Code
	case errors.Is(err, agent.ErrBadID):
		return kerr.InvalidRecord.Code
	case errors.Is(err, agent.ErrNoRoute):
		return kerr.UnknownTopicOrPartition.Code
	}
	return kerr.KafkaStorageError.Code
}

// setError sets a partition's error code and counts it.
func (s *Server) setError(p *kmsg.ProduceResponseTopicPartition, code int16) {
	p.ErrorCode = code
	p.BaseOffset = -1
	s.m.produceError(code)
}

// upstreamMax is the topic's max.message.bytes upstream when mirrored, 0
// when not known.
func (s *Server) upstreamMax(topic string) int {
	if !s.opts.Mirror {
		return 0
	}
	return s.mir.maxBytes(topic)
}

// badID returns the first record of b whose sluice-id header Accept
// refuses (agent.ChainedID), with the reason.
func badID(b *batch) (int, error) {
	for i := range b.records {
		if _, _, err := agent.ChainedID(b.records[i].headers); err != nil {
			return i, err
		}
	}
	return 0, nil
}

// largestValue is the size of the largest record value of b (what
// Accept checks against its message size limit).
func largestValue(b *batch) int {
	largest := 0
	for i := range b.records {
		largest = max(largest, len(b.records[i].value))
	}
	return largest
}

// recordOverhead is what a record costs upstream besides its key, value
// and headers: the batch header (61), the record's own framing, and the
// sluice-id header sluice adds.
const recordOverhead = 61 + 24 + 64

// largestRecord is the size the largest record of b takes upstream, alone
// in a batch, uncompressed (an upper bound of what the broker checks).
func largestRecord(b *batch) int {
	largest := 0
	for i := range b.records {
		r := &b.records[i]
		n := recordOverhead + len(r.key) + len(r.value)
		for _, h := range r.headers {
			n += 10 + len(h.Key) + len(h.Value)
		}
		largest = max(largest, n)
	}
	return largest
}
