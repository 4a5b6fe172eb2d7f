package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"

	"github.com/sluiceio/sluice/sink"
)

// Write sends msgs in one attempt and reports the outcome per the sink
// contract (see the package documentation for the error classes). It fills
// Delivered, DeliveredPart and DeliveredOffset of every message the cluster
// acknowledged (not with acks=none). The whole call is bounded by
// WriteTimeout.
func (w *Writer) Write(ctx context.Context, msgs []sink.Message) error {
	if w.closed.Load() {
		return sink.WithReason(ReasonClosed, ErrClosed)
	}
	if len(msgs) == 0 {
		return nil
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, w.cfg.WriteTimeout)
	defer cancel()
	defer context.AfterFunc(w.closing, cancel)()

	sc := getScratch()
	op := &writeOp{
		w:    w,
		msgs: msgs,
		errs: make([]error, len(msgs)),
		refs: sc.msgRefs(len(msgs)),
		now:  w.cfg.Now(),
		sc:   sc,
	}
	op.run(ctx)
	err := op.finish(time.Since(start))
	if !op.abandoned {
		putScratch(sc)
	}
	return err
}

// writeOp is the state of one Write.
type writeOp struct {
	w    *Writer
	msgs []sink.Message
	errs []error // outcome per message; nil and delivered, or the failure
	refs []msgRef
	now  time.Time

	topic   []string // Kafka topic per message
	addID   []bool   // add the sluice-id header
	pending []bool   // still to be sent
	sent    bool     // a produce request was attempted

	// ambiguous is a permanent error of a request carrying several
	// messages: the whole Write fails Permanent so the forwarder splits.
	ambiguous error

	topicErrs map[string]error // unknown-topic verdicts from produce errors
	groupOf   []*group         // per message, once sent

	sc        *scratch
	abandoned bool // kafka-go may still use sc: do not reuse it

	reached, down, auth, reset bool
	cause                      error // first failure, for the state log
}

// group is the messages of one Write bound for one partition, in order,
// cut into chunks that each fit one produce request.
type group struct {
	topic  string
	part   int32
	idxs   []int32
	chunks [][]int32
	failed error // a chunk failed: later chunks are not sent
}

func (op *writeOp) run(ctx context.Context) {
	n := len(op.msgs)
	op.topic = make([]string, n)
	op.addID = make([]bool, n)
	op.pending = make([]bool, n)
	if !op.prepare() {
		return
	}
	parts, ok := op.metadata(ctx)
	if !ok {
		return
	}
	op.recheckPartitions(ctx, parts) // recheck.go
	groups := op.assign(parts)
	if len(groups) == 0 {
		return
	}
	op.send(ctx, groups)
}

// prepare maps topics and rejects what cannot ever be sent: invalid topic
// names, messages over MaxMessageBytes, negative partitions. It reports
// whether anything is left to send.
func (op *writeOp) prepare() bool {
	cfg := &op.w.cfg
	left := false
	for i := range op.msgs {
		m := &op.msgs[i]
		m.Delivered, m.DeliveredPart, m.DeliveredOffset = false, 0, 0
		op.refs[i] = msgRef{idx: int32(i), part: -1}
		t := cfg.kafkaTopic(m.Topic)
		op.topic[i] = t
		op.addID[i] = m.ID != "" && !hasIDHeader(m)
		switch {
		case !sink.ValidTopic(t):
			op.fail(i, sink.Permanent(sink.WithReason(ReasonInvalidTopic,
				fmt.Errorf("kafka: invalid topic name %q", t))))
		case m.Partition < sink.NoPartition:
			op.fail(i, sink.Permanent(sink.WithReason(ReasonInvalidPartition,
				fmt.Errorf("kafka: topic %s: invalid partition %d", t, m.Partition))))
		default:
			if size := singleRecordBatchSize(m, op.addID[i]); size > cfg.MaxMessageBytes {
				op.fail(i, sink.Permanent(sink.WithReason(ReasonTooLarge,
					fmt.Errorf("kafka: topic %s: message of %d bytes encoded exceeds max message bytes %d", t, size, cfg.MaxMessageBytes))))
				continue
			}
			op.pending[i] = true
			left = true
		}
	}
	return left
}

// fail records err for message i, which will not be sent.
func (op *writeOp) fail(i int, err error) {
	op.errs[i] = err
	op.pending[i] = false
}

// failPending records a failure of the whole Write before or instead of a
// produce round: every pending message fails with err.
func (op *writeOp) failPending(err error, c class) {
	op.note(err, c)
	e := sink.WithReason(c.reason, err)
	for i, p := range op.pending {
		if p {
			op.fail(i, e)
		}
	}
}

// note folds one failure's class into the Write's state.
func (op *writeOp) note(err error, c class) {
	if op.cause == nil {
		op.cause = sink.WithReason(c.reason, err)
	}
	op.reached = op.reached || c.reached
	op.auth = op.auth || c.reason == ReasonAuth
	op.reset = op.reset || c.reset
	switch c.reason {
	case ReasonNetwork, ReasonTimeout, ReasonTLS:
		op.down = true
	}
}

// metadata returns the partition count of every topic with pending
// messages, from the Transport's cache. Messages of topics that have none
// fail here.
func (op *writeOp) metadata(ctx context.Context) (map[string]int, bool) {
	var names []string
	seen := make(map[string]bool)
	for i, p := range op.pending {
		if p && !seen[op.topic[i]] {
			seen[op.topic[i]] = true
			names = append(names, op.topic[i])
		}
	}
	r, err := op.w.transport.RoundTrip(ctx, op.w.addr, &metadataAPI.Request{TopicNames: names})
	if err != nil {
		err = op.w.contextError(ctx, err)
		op.failPending(fmt.Errorf("kafka: metadata: %w", err), transient(classify(err)))
		return nil, false
	}
	// The answer may come from the Transport's cache: it proves nothing
	// about reaching a broker now.
	parts := make(map[string]int, len(names))
	topicErr := make(map[string]error)
	for _, t := range r.(*metadataAPI.Response).Topics {
		if !seen[t.Name] {
			continue
		}
		switch {
		case t.ErrorCode != 0:
			topicErr[t.Name] = kafkago.Error(t.ErrorCode)
		case len(t.Partitions) == 0:
			topicErr[t.Name] = kafkago.LeaderNotAvailable
		default:
			parts[t.Name] = len(t.Partitions)
		}
	}
	for _, t := range names {
		if _, ok := parts[t]; !ok && topicErr[t] == nil {
			topicErr[t] = kafkago.UnknownTopicOrPartition
		}
	}
	for t, terr := range topicErr {
		e := op.topicError(ctx, t, terr)
		for i, p := range op.pending {
			if p && op.topic[i] == t {
				op.fail(i, e)
			}
		}
	}
	return parts, true
}

// topicError turns an error about a whole topic into the error of each of
// its messages. Unknown topics are transient for UnknownTopicGrace, then
// permanent once a request naming the topic confirms it does not exist.
func (op *writeOp) topicError(ctx context.Context, topic string, err error) error {
	c := classify(err)
	switch c.reason {
	case ReasonUnknownTopic:
		return op.unknownTopic(ctx, topic, err)
	case ReasonInvalidTopic:
		return sink.Permanent(sink.WithReason(c.reason, fmt.Errorf("kafka: topic %s: %w", topic, err)))
	}
	c = transient(c)
	c.reached = false // possibly cached
	op.note(err, c)
	return sink.WithReason(c.reason, fmt.Errorf("kafka: topic %s: %w", topic, err))
}

func (op *writeOp) unknownTopic(ctx context.Context, topic string, err error) error {
	w := op.w
	grace := w.cfg.UnknownTopicGrace
	first := w.unknown.seen(topic, op.now)
	unknownFor := op.now.Sub(first)
	if unknownFor < grace {
		op.note(err, class{reason: ReasonUnknownTopic, reset: true})
		return sink.WithReason(ReasonUnknownTopic, fmt.Errorf(
			"kafka: topic %s does not exist (unknown for %s, permanent after %s): %w",
			topic, unknownFor.Round(time.Millisecond), grace, err))
	}
	fresh, cerr := w.unknown.confirmation(topic, op.now, w.cfg.MetadataTTL)
	if !fresh {
		cerr = w.confirmUnknown(ctx, topic)
		if ctx.Err() == nil {
			w.unknown.confirm(topic, op.now, cerr)
		}
	}
	switch cc := classify(cerr); {
	case cerr == nil:
		// It exists: our metadata is stale.
		op.note(err, class{reason: ReasonUnknownTopic, reached: true, reset: true})
		return sink.WithReason(ReasonUnknownTopic, fmt.Errorf("kafka: topic %s: metadata not refreshed yet: %w", topic, err))
	case cc.reason == ReasonUnknownTopic && cc.reached:
		op.reached = true
		if w.unknown.markPermanent(topic) {
			w.log.Warn("kafka topic does not exist; its messages now fail permanently",
				slog.String("topic", topic), slog.Duration("unknown_for", unknownFor))
		}
		return sink.Permanent(sink.WithReason(ReasonUnknownTopic, fmt.Errorf(
			"kafka: topic %s does not exist (unknown for %s): %w", topic, unknownFor.Round(time.Millisecond), err)))
	default:
		cerr = w.contextError(ctx, cerr)
		cc = transient(classify(cerr))
		op.note(cerr, cc)
		return sink.WithReason(cc.reason, fmt.Errorf("kafka: topic %s: %w", topic, cerr))
	}
}

// transient drops the permanent mark of c.
func transient(c class) class {
	c.permanent = false
	return c
}

// contextError turns the error of a call whose context ended into the
// context's error (timeout or cancel), or ErrClosed when Close aborted it.
func (w *Writer) contextError(ctx context.Context, err error) error {
	if w.closed.Load() {
		return ErrClosed // Close aborts in-flight calls through their contexts or connections
	}
	if ctx.Err() == nil {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w (%v)", ctx.Err(), err)
}

// finish updates the Writer's state and metrics and builds Write's result.
func (op *writeOp) finish(took time.Duration) error {
	w := op.w
	res := writeResult{Sent: op.sent, N: len(op.msgs), Took: took}
	delivered, permanent := 0, 0
	var first error
	deliveredTopics := make(map[string]bool)
	for i, err := range op.errs {
		switch {
		case err == nil:
			delivered++
			res.DeliveredBytes += len(op.msgs[i].Key) + len(op.msgs[i].Value)
			deliveredTopics[op.topic[i]] = true
		default:
			if first == nil {
				first = err
			}
			if res.Failed == nil {
				res.Failed = make(map[string]int)
			}
			res.Failed[sink.Reason(err)]++
			if sink.IsPermanent(err) {
				permanent++
			}
		}
	}
	res.Delivered = delivered
	for t := range deliveredTopics {
		w.unknown.known(t)
	}
	if op.reset {
		w.resetMetadata()
	}
	w.health.Update(op.reached || delivered > 0, op.down, op.auth, op.cause)
	w.metrics.Observe(&res)

	switch {
	case op.ambiguous != nil:
		return sink.Permanent(op.ambiguous)
	case first == nil:
		return nil
	case delivered == 0 && permanent == 0:
		return first
	default:
		return &sink.BatchError{Errs: op.errs}
	}
}
