package sqs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sluiceio/sluice/sink"
)

// Errors returned by the Writer.
var (
	// ErrClosed is returned by Write after (or while) Close runs.
	ErrClosed = errors.New("sqs: writer closed")
	// ErrNoRegion: neither Options.Region, the queue URL nor the AWS
	// configuration names a region.
	ErrNoRegion = errors.New("sqs: no region: set the sink's REGION (or AWS_REGION)")
)

var _ sink.Sink = (*Writer)(nil)

// Writer is the SQS sink. Write and Close are safe for concurrent use.
type Writer struct {
	cfg       config
	client    *sqs.Client
	transport atomic.Pointer[http.Transport] // nil until the first request
	metrics   *sinkMetrics
	log       *slog.Logger

	closing context.Context // cancelled when Close starts: aborts Writes
	abort   context.CancelFunc
	// active is read-locked by every Write; Close takes it to wait for
	// them.
	active    sync.RWMutex
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	stateMu     sync.Mutex
	up          int8 // -1 unknown, 0 unreachable or queue missing, 1
	authFailing bool
	noQueue     bool
}

// New validates o and builds the SQS client. It resolves the AWS
// configuration (region, credential chain) but contacts nothing: the first
// Write does.
func New(o Options) (*Writer, error) {
	cfg, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	// The SDK's buildable client, so that AWS_CA_BUNDLE still applies; the
	// transport it builds is kept to close idle connections on Close.
	w := &Writer{}
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = 2 * cfg.MaxInFlight
		tr.MaxIdleConnsPerHost = 2 * cfg.MaxInFlight
		tr.IdleConnTimeout = 30 * time.Second
		tr.ResponseHeaderTimeout = cfg.RequestTimeout
		w.transport.Store(tr)
	}).WithDialerOptions(func(d *net.Dialer) {
		d.Timeout = min(cfg.RequestTimeout, 10*time.Second)
	})

	loadOpts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithHTTPClient(hc),
		awsconfig.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
	}
	region := cfg.Region
	if region == "" {
		region = cfg.urlRegion
	}
	if region != "" {
		loadOpts = append(loadOpts, awsconfig.WithRegion(region))
	}
	if cfg.Credentials != nil {
		loadOpts = append(loadOpts, awsconfig.WithCredentialsProvider(cfg.Credentials))
	}
	ac, err := awsconfig.LoadDefaultConfig(context.Background(), loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("sqs: AWS configuration: %w", err)
	}
	if ac.Region == "" {
		return nil, ErrNoRegion
	}
	client := sqs.NewFromConfig(ac, func(so *sqs.Options) {
		if cfg.Endpoint != "" {
			so.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		so.Retryer = aws.NopRetryer{}
	})
	w.cfg, w.client, w.up = cfg, client, -1
	w.metrics = newSinkMetrics(cfg.Metrics, cfg.Name)
	w.log = cfg.Logger.With(slog.String("sink", cfg.Name))
	w.closing, w.abort = context.WithCancel(context.Background())
	w.log.Info("sqs sink configured", slog.String("queue", cfg.queueName), slog.Bool("fifo", cfg.fifo),
		slog.String("region", ac.Region), slog.String("endpoint", cfg.Endpoint),
		slog.Int("request_bytes", cfg.RequestBytes), slog.Duration("request_timeout", cfg.RequestTimeout))
	return w, nil
}

// Close aborts Writes in progress (they return ErrClosed, transient),
// waits for them until ctx is done at the latest, and closes idle
// connections. Close is idempotent; later calls return the first result.
func (w *Writer) Close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		w.closed.Store(true)
		w.abort()
		done := make(chan struct{})
		go func() {
			w.active.Lock()
			//lint:ignore SA2001 an empty critical section: waiting for the Writes is the point
			w.active.Unlock()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			w.closeErr = fmt.Errorf("sqs: close: %w", ctx.Err())
		}
		if tr := w.transport.Load(); tr != nil {
			tr.CloseIdleConnections()
		}
	})
	return w.closeErr
}

// updateState records what a Write learnt, for the gauges and the log.
func (w *Writer) updateState(reached, delivered, auth, noQueue bool, cause error) {
	w.stateMu.Lock()
	defer w.stateMu.Unlock()
	up := delivered || (reached && !noQueue && !auth)
	switch {
	case up && w.up != 1:
		if w.up == 0 {
			w.log.Info("sqs queue reachable again", slog.String("queue", w.cfg.queueName))
		}
		w.up = 1
	case !up && !delivered && cause != nil && w.up != 0:
		w.log.Warn("sqs queue not reachable; retrying", slog.String("queue", w.cfg.queueName),
			slog.String("reason", sink.Reason(cause)), slog.Any("error", cause))
		w.up = 0
	}
	if auth != w.authFailing && (auth || reached) {
		if auth {
			w.log.Error("sqs credentials or permissions failing; retrying (never dead-lettered)", slog.Any("error", cause))
		} else {
			w.log.Info("sqs credentials and permissions ok again")
		}
		w.authFailing = auth
	}
	if noQueue != w.noQueue && (noQueue || reached) {
		if noQueue {
			w.log.Error("sqs queue does not exist; retrying until it does", slog.String("url", w.cfg.URL), slog.Any("error", cause))
		}
		w.noQueue = noQueue
	}
	w.metrics.state(w.up == 1, w.authFailing)
}
