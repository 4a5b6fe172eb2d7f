package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"
	"github.com/segmentio/kafka-go/sasl"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/internal/sinkmetrics"
)

// Errors returned by the Writer.
var (
	// ErrClosed is returned by Write after (or while) Close runs.
	ErrClosed = errors.New("kafka: writer closed")
)

var _ sink.Sink = (*Writer)(nil)

// Writer is the Kafka sink: one kafka-go Writer and Transport per sink.
// Write makes a single attempt; the forwarder retries. Write and Close are
// safe for concurrent use.
type Writer struct {
	cfg       config
	kw        *kafkago.Writer
	transport *kafkago.Transport
	addr      net.Addr
	mech      sasl.Mechanism
	part      partitioner
	conns     *connTracker
	unknown   unknownTopics
	corrupt   corruptSeen // recheck.go
	metrics   *sinkMetrics
	log       *slog.Logger

	bg       context.Context // kafka-go's background goroutines; cancelled by Close
	bgCancel context.CancelFunc
	closing  context.Context // cancelled when Close starts: aborts blocked Writes
	abort    context.CancelFunc

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	health *sinkmetrics.Health
}

// msgRef travels with each kafka-go message in WriterData: the partition
// Write chose, and the delivery report kafka-go's Completion fills in.
type msgRef struct {
	idx  int32
	part int32

	// Written by Completion on a kafka-go goroutine; read by Write only
	// after WriteMessages returned without a context error, which orders
	// the two (WriteMessages waits for the batch, and the batch completes
	// after Completion returns).
	delivered bool
	gotPart   int32
	offset    int64
}

// New validates o and returns a Writer. It does not contact the brokers:
// the first Write does.
func New(o Options) (*Writer, error) {
	cfg, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	conns := &connTracker{dialer: net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}}
	mech, err := newMechanism(&cfg, conns)
	if err != nil {
		return nil, err
	}
	if cfg.TLS != nil {
		cfg.TLS = cfg.TLS.Clone()
	}
	w := &Writer{
		cfg:     cfg,
		addr:    kafkago.TCP(cfg.Brokers...),
		mech:    mech,
		part:    newPartitioner(cfg.Partitioner),
		conns:   conns,
		metrics: newSinkMetrics(cfg.Metrics, cfg.Name),
		log:     cfg.Logger.With(slog.String("sink", cfg.Name)),
	}
	w.health = sinkmetrics.NewHealth(w.metrics, w.log, "kafka brokers", "kafka", "")
	w.bg, w.bgCancel = context.WithCancel(context.Background())
	w.closing, w.abort = context.WithCancel(context.Background())
	w.transport = w.newTransport(nil)
	w.kw = &kafkago.Writer{
		Addr:                   w.addr,
		Balancer:               presetBalancer{w.part},
		MaxAttempts:            1,
		BatchSize:              cfg.BatchMessages,
		BatchBytes:             int64(cfg.MaxMessageBytes),
		BatchTimeout:           time.Millisecond,
		ReadTimeout:            cfg.WriteTimeout,
		WriteTimeout:           cfg.WriteTimeout,
		RequiredAcks:           cfg.acks,
		Compression:            cfg.compression,
		Transport:              w.transport,
		AllowAutoTopicCreation: false,
		Completion:             w.completion,
	}
	w.metrics.SetAuthFailing(false)

	w.log.Info("kafka sink configured",
		slog.Any("brokers", cfg.Brokers), slog.String("client_id", cfg.ClientID),
		slog.String("acks", cfg.Acks), slog.String("compression", cfg.Compression),
		slog.String("partitioner", cfg.Partitioner), slog.Bool("tls", cfg.TLS != nil),
		slog.Any("sasl", cfg.SASL), slog.Duration("write_timeout", cfg.WriteTimeout))
	if cfg.acks != kafkago.RequireAll {
		w.log.Warn("kafka sink acks is not all: a successful write is not guaranteed to be on every in-sync replica",
			slog.String("acks", cfg.Acks))
	}
	return w, nil
}

// newTransport builds a kafka-go Transport with the Writer's connection
// settings. metadataTopics nil caches metadata of every topic.
func (w *Writer) newTransport(metadataTopics []string) *kafkago.Transport {
	return &kafkago.Transport{
		Dial:           w.conns.dial,
		DialTimeout:    w.cfg.DialTimeout,
		IdleTimeout:    w.cfg.IdleTimeout,
		MetadataTTL:    w.cfg.MetadataTTL,
		MetadataTopics: metadataTopics,
		ClientID:       w.cfg.ClientID,
		TLS:            w.cfg.TLS,
		SASL:           w.mech,
		Context:        w.bg,
	}
}

// completion is kafka-go's Completion callback. kafka-go calls it for
// synchronous writes too, once per partition batch, before WriteMessages
// returns, with Partition and Offset (base offset + index) set from the
// produce response.
func (w *Writer) completion(msgs []kafkago.Message, err error) {
	if err != nil || w.cfg.acks == kafkago.RequireNone {
		return // acks=none: no produce response, no offsets
	}
	for i := range msgs {
		if r, ok := msgs[i].WriterData.(*msgRef); ok {
			r.gotPart, r.offset, r.delivered = int32(msgs[i].Partition), msgs[i].Offset, true
		}
	}
}

// Close stops the Writer: blocked Writes return ErrClosed, kafka-go's
// Writer is closed (it waits for in-flight requests), and connections are
// closed. When ctx ends first, Close cuts the connections and returns
// ctx's error. Close is idempotent; later calls return the first result.
func (w *Writer) Close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		w.closed.Store(true)
		w.abort()
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = w.kw.Close() // always nil
		}()
		select {
		case <-done:
		case <-ctx.Done():
			w.closeErr = fmt.Errorf("kafka: close: %w", ctx.Err())
			w.log.Warn("kafka sink close did not finish in time; cutting connections", slog.Any("error", ctx.Err()))
		}
		w.transport.CloseIdleConnections()
		w.bgCancel()
		w.conns.closeAll()
	})
	return w.closeErr
}

// resetMetadata drops the Transport's cached metadata and idle connections:
// the next request fetches fresh metadata over a new connection. Requests
// in flight finish on their connections.
func (w *Writer) resetMetadata() {
	w.transport.CloseIdleConnections()
}

// confirmUnknown asks the cluster about one topic by name, bypassing the
// Transport's cache, which lists every topic the principal may describe: a
// topic hidden by ACLs looks unknown there but answers
// TOPIC_AUTHORIZATION_FAILED when named. It returns nil when the topic
// exists, a kafka-go Error for a topic error code, or the request's error.
func (w *Writer) confirmUnknown(ctx context.Context, topic string) error {
	t := w.newTransport([]string{topic})
	defer t.CloseIdleConnections()
	r, err := t.RoundTrip(ctx, w.addr, &metadataAPI.Request{TopicNames: []string{topic}})
	if err != nil {
		return err
	}
	for _, tp := range r.(*metadataAPI.Response).Topics {
		if tp.Name == topic {
			if tp.ErrorCode != 0 {
				return kafkago.Error(tp.ErrorCode)
			}
			return nil
		}
	}
	return kafkago.UnknownTopicOrPartition
}
