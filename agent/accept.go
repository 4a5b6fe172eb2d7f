package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/spool"
)

// Errors of Accept. Each is wrapped with details; test with errors.Is.
var (
	// ErrDraining: the agent is shutting down and no longer accepts
	// (SLUICE_DRAIN_ACCEPT unset). Retriable against the next agent.
	ErrDraining = errors.New("agent: shutting down")
	// ErrSpoolFull: the spool, a target sink's backlog or the in-flight
	// byte budget is at its cap. Retriable later; nothing was spooled.
	ErrSpoolFull = errors.New("agent: spool full")
	// ErrSpoolTimeout: the append did not complete within
	// SLUICE_SPOOL_APPEND_TIMEOUT. The outcome is unknown: the messages may
	// still be written.
	ErrSpoolTimeout = errors.New("agent: spool append timed out")
	// ErrDiskFull: the spool's disk is full. Retriable once space returns.
	ErrDiskFull = errors.New("agent: spool disk full")
	// ErrNoRoute: no configured sink takes the topic. Permanent.
	ErrNoRoute = errors.New("agent: no sink takes the topic")
	// ErrBadTopic: the topic name is not a valid Kafka topic. Permanent.
	ErrBadTopic = errors.New("agent: invalid topic")
	// ErrTooLarge: a message is over the message size limit, or the
	// request over the spool's record limit. Permanent.
	ErrTooLarge = errors.New("agent: message too large")
	// ErrBadID: a message's sluice-id header (a chained id) is not 1–128
	// printable ASCII bytes, or there are several. Permanent.
	ErrBadID = errors.New("agent: invalid sluice-id header")
	// ErrIO: the spool failed to write. The agent repairs the spool; the
	// caller may retry.
	ErrIO = errors.New("agent: spool i/o error")
	// ErrNoPartitions: no sink the topic is routed to knows partitions
	// (none implements PartitionCounter).
	ErrNoPartitions = errors.New("agent: no sink of the topic has partitions")
)

// PartitionCounter is implemented by sinks with partitions (Kafka): the
// topic's partition count upstream, asked of the cluster.
type PartitionCounter interface {
	Partitions(ctx context.Context, topic string) (int, error)
}

// MessageLimiter is implemented by sinks whose upstream limits a topic's
// record size (Kafka: max.message.bytes), asked of the cluster.
type MessageLimiter interface {
	MaxMessageBytes(ctx context.Context, topic string) (int, error)
}

// TopicInfo is what a topic's upstream says about it.
type TopicInfo struct {
	Partitions      int
	MaxMessageBytes int // 0 = not known
}

// Message is one message a front-end hands to Accept.
type Message struct {
	Topic     string
	Key       []byte // nil = no key
	Value     []byte
	Headers   []sink.Header // a sluice-id header (chained agents) becomes the message's id
	Time      time.Time     // the message's timestamp; zero = now
	Partition int32         // explicit partition, or sink.NoPartition (the sink's partitioner decides)
	// Meta is the front-end's own bytes, stored with the message and
	// never forwarded; ScanMeta hands them back after a restart (a
	// front-end rebuilds its state from them). nil = none.
	Meta []byte
}

// AcceptOptions tune one Accept call. The zero value is the default.
type AcceptOptions struct {
	// HeldBytes is the memory the caller holds for the request until
	// Accept returns, counted against the in-flight budget
	// (SLUICE_MAX_INFLIGHT_BYTES); 0 = the sum of the messages' sizes.
	HeldBytes int64
	// WaitOutcome makes an append that outlives the spool's append timeout
	// wait for its real outcome instead of answering ErrSpoolTimeout: for
	// a caller that must know whether the messages were spooled before it
	// answers (an idempotent producer's sequence window), as the price of
	// a longer wait when the disk is slow.
	WaitOutcome bool
}

// Accepted is what Accept spooled.
type Accepted struct {
	// IDs holds each message's sluice-id, in order.
	IDs []string
	// First is the spool sequence of the first message; message i has
	// First+i. Sequences grow monotonically over the life of the spool
	// (across process restarts; with SLUICE_SPOOL_SYNC other than always,
	// a machine crash can cut an unsynced tail and reuse its sequences).
	First uint64
}

// Acceptor is the accept path front-ends spool through. *Agent implements
// it.
type Acceptor interface {
	// Accept spools msgs all-or-nothing in one group commit and returns
	// once they are durable under the sync policy. Errors are the Err*
	// sentinels of this package (wrapped); on any of them nothing was
	// spooled, except ErrSpoolTimeout (outcome unknown).
	Accept(ctx context.Context, msgs []Message, o AcceptOptions) (Accepted, error)
	// Routable returns nil when some sink takes topic, else ErrBadTopic or
	// ErrNoRoute (wrapped).
	Routable(topic string) error
	// Check returns nil when Accept would now take messages for topic:
	// else Routable's errors, or ErrSpoolFull (wrapped) when a sink or
	// queue the topic goes to is at its backlog cap with policy reject (a
	// front-end refuses only that topic's messages). Accept may still
	// refuse: the backlogs change.
	Check(topic string) error
	// MaxMessageBytes is the largest message value Accept takes
	// (ErrTooLarge above): a front-end checks its messages against it to
	// refuse only those at fault.
	MaxMessageBytes() int
	// ScanMeta calls fn, in spool order, for each message still in the
	// spool that was appended at or after since and carries Meta, with its
	// topic and spool sequence (what Accepted.First counts). meta is valid
	// only during the call.
	ScanMeta(since time.Time, fn func(seq uint64, topic string, meta []byte)) error
	// LastSeq is the spool sequence of the last message spooled (0 =
	// none): after a crash, what ScanMeta hands back may belong to an
	// append whose tail was cut (never acknowledged).
	LastSeq() uint64
	// TopicInfo asks the first sink the topic is routed to that has
	// partitions (PartitionCounter) for the topic's count upstream, and its
	// record size limit when the sink knows one (MessageLimiter);
	// ErrNoPartitions when no sink has partitions, else that sink's error.
	TopicInfo(ctx context.Context, topic string) (TopicInfo, error)
}

// FrontEnd is an ingest protocol served beside the HTTP listener, over
// Accept: it owns its listener, which it opened before Agent.Run.
type FrontEnd interface {
	// Name names the front-end in logs ("kafka").
	Name() string
	// Addr is the bound address.
	Addr() string
	// Serve serves connections until ctx is done, then closes its
	// listener and connections, waits for requests in flight and returns
	// nil. Another error means the front-end failed.
	Serve(ctx context.Context, acc Acceptor) error
}

var _ Acceptor = (*Agent)(nil)

// Routable implements Acceptor.
func (a *Agent) Routable(topic string) error {
	if !sink.ValidTopic(topic) {
		return fmt.Errorf("%w: %q", ErrBadTopic, topic)
	}
	for _, f := range a.fwds {
		if matchTopic(f.spec.Topics, topic) {
			return nil
		}
	}
	if a.queueTakes(topic) {
		return nil
	}
	return fmt.Errorf("%w: %q", ErrNoRoute, topic)
}

// Check implements Acceptor.
func (a *Agent) Check(topic string) error {
	if err := a.Routable(topic); err != nil {
		return err
	}
	if _, e := a.targets(topic); e != nil {
		return fmt.Errorf("%w: %s", ErrSpoolFull, e.msg)
	}
	return nil
}

// MaxMessageBytes implements Acceptor.
func (a *Agent) MaxMessageBytes() int { return a.opts.MaxMessageBytes }

// Accept implements Acceptor: the transport-neutral accept path (drain and
// in-flight checks, routing and per-sink caps, one spool append).
//
// The HTTP path (accept in ingest.go) does the same steps plus what only
// HTTP has (Sluice-Callback, Idempotency-Key); it can call Accept once
// those become options here.
func (a *Agent) Accept(ctx context.Context, in []Message, o AcceptOptions) (Accepted, error) {
	if len(in) == 0 {
		return Accepted{}, nil
	}
	if a.draining.Load() && !a.opts.DrainAccept {
		return Accepted{}, ErrDraining
	}
	held := o.HeldBytes
	if held <= 0 {
		for i := range in {
			held += int64(len(in[i].Key) + len(in[i].Value))
		}
	}
	if a.inflight.Add(held) > a.opts.MaxInflightBytes {
		a.inflight.Add(-held)
		return Accepted{}, fmt.Errorf("%w: too many request bytes in flight", ErrSpoolFull)
	}
	defer a.inflight.Add(-held)

	now := time.Now().UnixNano()
	msgs := make([]Msg, len(in))
	size := 0
	var lastTopic string
	var lastSinks []string
	for i := range in {
		m := &in[i]
		if len(m.Value) > a.opts.MaxMessageBytes {
			return Accepted{}, fmt.Errorf("%w: message %d: %d bytes > %d", ErrTooLarge, i, len(m.Value), a.opts.MaxMessageBytes)
		}
		if i == 0 || m.Topic != lastTopic {
			if err := a.Routable(m.Topic); err != nil {
				return Accepted{}, err
			}
			sinks, e := a.targets(m.Topic)
			if e != nil { // a sink at its backlog cap (no_route was ruled out above)
				return Accepted{}, fmt.Errorf("%w: %s", ErrSpoolFull, e.msg)
			}
			lastTopic, lastSinks = m.Topic, sinks
		}
		t := now
		if !m.Time.IsZero() {
			t = m.Time.UnixNano()
		}
		msgs[i] = Msg{Time: t, Partition: m.Partition, Topic: m.Topic, Key: m.Key, Sinks: lastSinks, Headers: m.Headers, Value: m.Value, Meta: m.Meta}
		var err error
		if msgs[i].ID, msgs[i].Headers, err = ChainedID(m.Headers); err != nil {
			return Accepted{}, fmt.Errorf("message %d: %w", i, err)
		}
		size += encodedSize(&msgs[i])
	}
	batch := spool.NewBatch(len(msgs), size)
	for i := range msgs {
		batch.End(appendMsg(batch.Begin(), &msgs[i]))
	}
	first, err := a.append(ctx, batch, o.WaitOutcome)
	if err != nil {
		a.m.rejected(acceptCode(err))
		return Accepted{}, acceptError(err)
	}
	acc := Accepted{IDs: make([]string, len(msgs)), First: first.Seq}
	var valueBytes int
	for i := range msgs {
		sid := spool.ID{Epoch: first.Epoch, Seq: first.Seq + uint64(i)}
		if msgs[i].ID != "" {
			acc.IDs[i] = msgs[i].ID
			a.records.setChained(msgs[i].ID, sid)
		} else {
			acc.IDs[i] = formatID(a.sp.SpoolID(), sid)
		}
		valueBytes += len(msgs[i].Value)
	}
	a.m.ingestMessages.Add(len(msgs))
	a.m.ingestBytes.Add(valueBytes)
	return acc, nil
}

// TopicInfo implements Acceptor.
func (a *Agent) TopicInfo(ctx context.Context, topic string) (TopicInfo, error) {
	for _, f := range a.fwds {
		pc, ok := f.spec.Sink.(PartitionCounter)
		if !ok || !matchTopic(f.spec.Topics, topic) {
			continue
		}
		n, err := pc.Partitions(ctx, topic)
		if err != nil {
			return TopicInfo{}, fmt.Errorf("sink %s: %w", f.spec.Name, err)
		}
		info := TopicInfo{Partitions: n}
		if ml, ok := f.spec.Sink.(MessageLimiter); ok {
			if m, err := ml.MaxMessageBytes(ctx, topic); err == nil {
				info.MaxMessageBytes = m
			} else {
				a.log.Debug("topic config not known", "sink", f.spec.Name, "topic", topic, "err", err)
			}
		}
		return info, nil
	}
	return TopicInfo{}, ErrNoPartitions
}

// LastSeq implements Acceptor.
func (a *Agent) LastSeq() uint64 { return a.sp.LastSeq() }

// ScanMeta implements Acceptor.
func (a *Agent) ScanMeta(since time.Time, fn func(seq uint64, topic string, meta []byte)) error {
	var m Msg
	return a.sp.Scan(since, func(r spool.Record) bool {
		if r.Corrupt || !hasExtras(r.Data) || decodeMsg(r.Data, &m) != nil || m.Meta == nil {
			return true
		}
		fn(r.ID.Seq, m.Topic, m.Meta)
		return true
	})
}

// acceptError maps a spool error onto Accept's sentinels.
func acceptError(err error) error {
	switch {
	case errors.Is(err, spool.ErrFull):
		return fmt.Errorf("%w: %v", ErrSpoolFull, err)
	case errors.Is(err, spool.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %v", ErrSpoolTimeout, err)
	case errors.Is(err, spool.ErrClosed), errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: %v", ErrDraining, err)
	case errors.Is(err, spool.ErrDiskFull):
		return fmt.Errorf("%w: %v", ErrDiskFull, err)
	case errors.Is(err, spool.ErrTooLarge):
		return fmt.Errorf("%w: %v", ErrTooLarge, err)
	}
	return fmt.Errorf("%w: %v", ErrIO, err)
}

// acceptCode is the HTTP API's error code for a spool error, for the
// rejection metric.
func acceptCode(err error) string {
	if e := spoolError(err); e != nil {
		return e.code
	}
	return "io_error"
}

// ChainedID takes the sluice-id header out of hs: a message that already
// carries one (from another agent) keeps it as its id. As for HTTP's "id",
// the id must be 1–128 printable ASCII bytes, and there may be one only:
// else ErrBadID (wrapped). Without one, it returns "" and hs.
func ChainedID(hs []sink.Header) (string, []sink.Header, error) {
	at := -1
	for i, h := range hs {
		if h.Key != sink.IDHeader {
			continue
		}
		if at >= 0 {
			return "", hs, fmt.Errorf("%w: more than one", ErrBadID)
		}
		if !validID(string(h.Value)) {
			return "", hs, fmt.Errorf("%w: %d bytes, not 1-128 printable ASCII", ErrBadID, len(h.Value))
		}
		at = i
	}
	if at < 0 {
		return "", hs, nil
	}
	out := append(append(make([]sink.Header, 0, len(hs)-1), hs[:at]...), hs[at+1:]...)
	return string(hs[at].Value), out, nil
}

// append appends batch; with outcome, a timed-out append waits for its real
// outcome (the commit goroutine answers every request it took).
func (a *Agent) append(ctx context.Context, batch *spool.Batch, outcome bool) (spool.ID, error) {
	if !outcome {
		return a.sp.AppendBatch(ctx, batch)
	}
	p, err := a.sp.AppendAsync(ctx, batch)
	if err != nil {
		return spool.ID{}, err
	}
	first, err := p.Wait(ctx)
	if errors.Is(err, spool.ErrTimeout) || (err != nil && ctx.Err() != nil) {
		return p.Outcome()
	}
	return first, err
}
