package kafka

import (
	"context"
	"errors"
	"fmt"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluiceio/sluice/sink"
)

// assign picks the partition of every pending message and groups them per
// partition, in message order, cut into request-sized chunks.
func (op *writeOp) assign(parts map[string]int) []*group {
	cfg := &op.w.cfg
	type tp struct {
		t string
		p int32
	}
	var groups []*group
	byTP := make(map[tp]*group)
	for i, pend := range op.pending {
		if !pend {
			continue
		}
		m := &op.msgs[i]
		t := op.topic[i]
		n := parts[t]
		p := m.Partition
		switch {
		case p == sink.NoPartition:
			p = int32(op.w.part.partition(t, m.Key, m.Value, n))
		case int(p) >= n:
			op.fail(i, sink.Permanent(sink.WithReason(ReasonInvalidPartition,
				fmt.Errorf("kafka: topic %s has %d partitions, message asks for partition %d", t, n, p))))
			continue
		}
		op.refs[i].part = p
		g := byTP[tp{t, p}]
		if g == nil {
			g = &group{topic: t, part: p}
			byTP[tp{t, p}] = g
			groups = append(groups, g)
		}
		g.idxs = append(g.idxs, int32(i))
	}
	for _, g := range groups {
		size, start := recordBatchOverhead, 0
		for j, i := range g.idxs {
			s := recordSizeBound(&op.msgs[i], op.addID[i])
			if j > start && (j-start >= cfg.BatchMessages || size+s > cfg.MaxMessageBytes) {
				g.chunks = append(g.chunks, g.idxs[start:j])
				size, start = recordBatchOverhead, j
			}
			size += s
		}
		g.chunks = append(g.chunks, g.idxs[start:])
	}
	return groups
}

// send produces the groups in rounds: round r carries chunk r of every
// group whose earlier chunks succeeded, one request per partition. Almost
// always there is a single round.
func (op *writeOp) send(ctx context.Context, groups []*group) {
	sc := op.sc
	conv := sc.converter(op.msgs, op.pending)
	km := sc.messages(len(op.msgs))
	op.groupOf = make([]*group, len(op.msgs))
	rounds, pending := 0, 0
	for _, g := range groups {
		rounds = max(rounds, len(g.chunks))
		pending += len(g.idxs)
		for _, i := range g.idxs {
			km[i] = conv.convert(&op.msgs[i], g.topic, op.now)
			km[i].WriterData = &op.refs[i]
			op.groupOf[i] = g
		}
	}
	sc.arena, sc.hdrs = conv.arena, conv.hdrs

	idx, batch := sc.idx[:0], sc.batch[:0]
	for r := 0; r < rounds; r++ {
		idx, batch = idx[:0], batch[:0]
		if rounds == 1 && pending == len(op.msgs) {
			// The common case: everything in one round, in message order.
			for i := range op.msgs {
				idx = append(idx, int32(i))
			}
			batch = km
		} else {
			for _, g := range groups {
				if r >= len(g.chunks) {
					continue
				}
				if g.failed != nil {
					op.blocked(g, g.chunks[r])
					continue
				}
				for _, i := range g.chunks[r] {
					idx = append(idx, i)
					batch = append(batch, km[i])
				}
			}
		}
		if len(idx) == 0 {
			continue
		}
		if ctx.Err() != nil {
			op.failRound(idx, op.w.contextError(ctx, ctx.Err()))
			continue
		}
		op.sent = true
		err := op.w.kw.WriteMessages(ctx, batch...)
		op.result(ctx, idx, err)
	}
	if len(batch) > 0 && &batch[0] != &km[0] {
		sc.batch = batch
	}
	sc.idx = idx
}

// blocked fails a chunk that is not sent because an earlier chunk of its
// partition failed: sending it would reorder the partition.
func (op *writeOp) blocked(g *group, chunk []int32) {
	c := classify(g.failed)
	e := sink.WithReason(transient(c).reason, fmt.Errorf(
		"kafka: %s[%d]: not sent, an earlier request to the partition failed: %v", g.topic, g.part, g.failed))
	for _, i := range chunk {
		op.fail(int(i), e)
	}
}

// failRound fails every message of a round with one error.
func (op *writeOp) failRound(idx []int32, err error) {
	c := transient(classify(err))
	op.note(err, c)
	e := sink.WithReason(c.reason, err)
	for _, i := range idx {
		op.fail(int(i), e)
		if g := op.groupOf[i]; g.failed == nil {
			g.failed = err
		}
	}
}

// result applies the outcome of one WriteMessages call.
func (op *writeOp) result(ctx context.Context, idx []int32, err error) {
	var (
		werrs   kafkago.WriteErrors
		tooLong kafkago.MessageTooLargeError
	)
	switch {
	case err == nil:
		op.reached = true
		for _, i := range idx {
			op.delivered(int(i))
		}
	case errors.As(err, &werrs) && len(werrs) == len(idx):
		for j, i := range idx {
			if werrs[j] == nil {
				op.reached = true
				op.delivered(int(i))
				continue
			}
			op.produceError(ctx, int(i), op.groupOf[i], werrs[j])
		}
	case errors.As(err, &tooLong):
		// kafka-go refused the call before sending anything because one
		// message exceeds BatchBytes. Our own size check should have
		// caught it; fail that one and retry the rest.
		bad := int32(-1)
		if r, ok := tooLong.Message.WriterData.(*msgRef); ok {
			bad = r.idx
		}
		for _, i := range idx {
			if i == bad {
				op.fail(int(i), sink.Permanent(sink.WithReason(ReasonTooLarge, fmt.Errorf("kafka: %w", err))))
				continue
			}
			op.fail(int(i), sink.WithReason(ReasonOther, errors.New("kafka: not sent, another message of the request was too large")))
			if g := op.groupOf[i]; g.failed == nil {
				g.failed = err
			}
		}
	default:
		// The call failed as a whole (context, metadata, closed writer):
		// nothing or anything may have been sent. After a context error
		// kafka-go may still be reading the messages.
		if ctx.Err() != nil {
			op.abandoned = true
		}
		op.failRound(idx, op.w.contextError(ctx, err))
	}
}

// delivered marks message i acknowledged and copies its delivery report.
func (op *writeOp) delivered(i int) {
	op.w.corrupt.forget(op.msgs[i].ID)
	op.errs[i] = nil
	op.pending[i] = false
	if r := &op.refs[i]; r.delivered {
		m := &op.msgs[i]
		m.Delivered, m.DeliveredPart, m.DeliveredOffset = true, r.gotPart, r.offset
	}
}

// produceError classifies the failure of the partition request that
// carried message i.
func (op *writeOp) produceError(ctx context.Context, i int, g *group, err error) {
	if g.failed == nil {
		g.failed = err
	}
	c := classify(err)
	op.reached = op.reached || c.reached
	err = fmt.Errorf("kafka: produce to %s[%d]: %w", g.topic, g.part, err)
	switch {
	case c.reason == ReasonUnknownTopic:
		// The topic went away after the metadata lookup; one verdict per
		// topic and Write.
		if op.topicErrs == nil {
			op.topicErrs = make(map[string]error)
		}
		e, ok := op.topicErrs[g.topic]
		if !ok {
			e = op.unknownTopic(ctx, g.topic, err)
			op.topicErrs[g.topic] = e
		}
		op.fail(i, e)
		return
	case c.reason == ReasonInvalidTopic:
		op.note(err, c)
		op.fail(i, sink.Permanent(sink.WithReason(c.reason, err)))
		return
	case c.reason == ReasonCorrupt && op.w.corrupt.retry(op.msgs[i].ID):
		// Possibly a wire CRC error: retried (recheck.go); falls to the
		// transient path below.
		c.permanent = false
	case c.permanent && op.chunkLen(g, int32(i)) == 1:
		// The request held this message alone: the error is about it.
		op.note(err, c)
		op.fail(i, sink.Permanent(sink.WithReason(c.reason, err)))
		return
	case c.permanent:
		// kafka-go fails the whole partition batch for one bad record and
		// does not say which: make the forwarder split.
		if op.ambiguous == nil {
			op.ambiguous = sink.WithReason(c.reason, fmt.Errorf("%w (%d messages rejected together)", err, op.chunkLen(g, int32(i))))
		}
	}
	c = transient(c)
	op.note(err, c)
	op.fail(i, sink.WithReason(c.reason, err))
}

// chunkLen is the number of messages in the request that carried i. A
// group's indexes increase, and its chunks are consecutive runs of them.
func (op *writeOp) chunkLen(g *group, i int32) int {
	for _, ch := range g.chunks {
		if len(ch) > 0 && i >= ch[0] && i <= ch[len(ch)-1] {
			return len(ch)
		}
	}
	return len(g.idxs)
}
