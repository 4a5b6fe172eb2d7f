package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluiceio/sluice/agent"
	"github.com/sluiceio/sluice/config"
	"github.com/sluiceio/sluice/frontend/kafkaproto"
	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/amqp1"
	"github.com/sluiceio/sluice/sink/discard"
	"github.com/sluiceio/sluice/sink/file"
	httpsink "github.com/sluiceio/sluice/sink/http"
	"github.com/sluiceio/sluice/sink/kafka"
	natssink "github.com/sluiceio/sluice/sink/nats"
	"github.com/sluiceio/sluice/sink/rabbitmq"
	sqssink "github.com/sluiceio/sluice/sink/sqs"
	"github.com/sluiceio/sluice/sink/stdout"
	"github.com/sluiceio/sluice/spool"
)

func newLogger(c *config.Config) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	ho := &slog.HandlerOptions{Level: lvl}
	// Logs go to stderr: the stdout sink owns stdout.
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, ho))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, ho))
}

func runAgent() error {
	c, err := config.Load()
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := newLogger(c)
	slog.SetDefault(log)
	set := metrics.NewSet()

	// Every record the main spool takes fits the dead-letter log as a dead
	// letter (config checks SLUICE_DEADLETTER_MAX_BYTES against the same
	// bound): a message the sink refuses can always leave its lane.
	// What is opened before the agent takes it over is closed again when
	// a later step fails.
	var opened []func()
	closeOpened := func() {
		for i := len(opened) - 1; i >= 0; i-- {
			opened[i]()
		}
	}
	openSpool := func(dir string, o spool.Options) (*spool.Spool, error) {
		s, err := spool.Open(dir, o)
		if err != nil {
			closeOpened()
			return nil, err
		}
		opened = append(opened, func() { s.Close() })
		return s, nil
	}

	// Every record the main spool takes fits the dead-letter log as a dead
	// letter (config checks SLUICE_DEADLETTER_MAX_BYTES against the same
	// bound): a message the sink refuses can always leave its lane.
	maxRecord := agent.MaxRecordBytes(int(c.MaxMessageBytes), int(c.MaxHeaderBytes))
	sp, err := openSpool(c.SpoolDir, spool.Options{
		MaxRecordBytes: maxRecord,
		SegmentBytes:   int64(c.SpoolSegmentBytes),
		Sync:           spool.SyncPolicy(c.SpoolSync),
		SyncInterval:   c.SpoolSyncInterval,
		MaxBytes:       int64(c.SpoolMaxBytes),
		FullPolicy:     spool.FullPolicy(c.SpoolFullPolicy),
		AppendTimeout:  c.SpoolAppendTimeout,
		OnFsync:        agent.FsyncObserver(set),
		Logger:         log.With("spool", "messages"),
	})
	if err != nil {
		return err
	}
	dl, err := openSpool(filepath.Join(c.SpoolDir, "deadletter"), spool.Options{
		// 16 MiB at least: tombstones of large purges are records too.
		MaxRecordBytes: max(16<<20, agent.MaxDeadLetterBytes(int(c.MaxMessageBytes), int(c.MaxHeaderBytes))),
		SegmentBytes:   min(int64(c.SpoolSegmentBytes), int64(c.DeadletterMaxBytes)/4),
		Sync:           spool.SyncPolicy(c.SpoolSync),
		MaxBytes:       int64(c.DeadletterMaxBytes),
		FullPolicy:     spool.DropOldest,
		Logger:         log.With("spool", "deadletter"),
	})
	if err != nil {
		return err
	}
	cbs, err := openSpool(filepath.Join(c.SpoolDir, "callbacks"),
		agent.CallbackStoreOptions(int64(c.CallbackMaxBytes), spool.SyncPolicy(c.SpoolSync), log))
	if err != nil {
		return err
	}
	idem, err := openSpool(filepath.Join(c.SpoolDir, agent.IdempotencyStoreDir),
		agent.IdempotencyStoreOptions(c.IdempotencyMaxKeys, log.With("spool", "idempotency")))
	if err != nil {
		return err
	}
	specs, err := buildSinks(c, log, set)
	if err != nil {
		closeOpened()
		return err
	}
	opened = append(opened, func() {
		for _, s := range specs {
			s.Sink.Close(context.Background())
		}
	})
	queues, err := buildQueues(c, log, sp)
	if err != nil {
		closeOpened()
		return err
	}
	opened = append(opened, func() {
		for _, q := range queues {
			q.Log.Close()
		}
	})
	var frontEnds []agent.FrontEnd
	if c.ListenKafka != "" {
		kl, err := newKafkaListener(c, log, set)
		if err != nil {
			closeOpened()
			return fmt.Errorf("SLUICE_LISTEN_KAFKA: %w", err)
		}
		defer kl.Close()
		frontEnds = append(frontEnds, kl)
	}
	drainTimeout := c.DrainTimeout
	if drainTimeout == 0 {
		drainTimeout = time.Nanosecond // 0 = exit at once
	}
	a, err := agent.New(agent.Options{
		Listen: c.Listen, AdminListen: c.AdminListen, AuthToken: c.AuthToken,
		Spool: sp, DeadLetter: dl, Callbacks: cbs, Idempotency: idem, Sinks: specs, Queues: queues,
		MaxMessageBytes: int(c.MaxMessageBytes), MaxRequestBytes: int(c.MaxRequestBytes),
		MaxHeaderBytes: int(c.MaxHeaderBytes), MaxHeaders: c.MaxHeaders,
		MaxInflightBytes: int64(c.MaxInflightBytes), MaxConnections: c.MaxConnections,
		AckTimeout: c.AckTimeout, AckTimeoutMax: c.AckTimeoutMax,
		ReadTimeout: c.ReadTimeout, WriteTimeout: c.WriteTimeout, IdleTimeout: c.IdleTimeout,
		DrainTimeout: drainTimeout, DrainAccept: c.DrainAccept, OrphanCursors: c.SpoolOrphanCursors, RecordCache: c.RecordCache,
		IdempotencyWindow: c.IdempotencyWindow, IdempotencyMax: c.IdempotencyMaxKeys,
		CallbackAllow: c.CallbackAllow, CallbackMaxPending: c.CallbackMaxPending,
		CallbackAttempts: c.CallbackAttempts, CallbackBackoff: c.CallbackBackoff,
		RestProxyAck: c.RestproxyAck, RestProxyCluster: c.RestproxyClusterID,
		FrontEnds: frontEnds,
		Logger:    log, Metrics: set, Version: version,
	})
	if err != nil {
		closeOpened()
		return err
	}

	// First SIGTERM/SIGINT drains; a second one exits at once.
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		cancel()
		<-sigs
		log.Warn("second signal: exiting without finishing the drain")
		os.Exit(1)
	}()
	return a.Run(ctx)
}

// newKafkaListener binds the Kafka-protocol listener; its producer id
// state lives in the spool directory (locked by the spool).
func newKafkaListener(c *config.Config, log *slog.Logger, set *metrics.Set) (*kafkaproto.Server, error) {
	parts := map[string]int32{}
	for t, v := range c.ListenKafkaTopicPartitions {
		n, _ := strconv.Atoi(v) // validated by config
		parts[t] = int32(n)
	}
	return kafkaproto.Listen(kafkaproto.Options{
		Addr: c.ListenKafka, StateDir: filepath.Join(c.SpoolDir, "kafka-listener"),
		Partitions: parts, DefaultPartitions: int32(c.ListenKafkaPartitions), Mirror: c.ListenKafkaMirror,
		MaxRequestBytes: int(c.MaxRequestBytes), MaxInflightBytes: int64(c.MaxInflightBytes),
		ReadTimeout: c.ReadTimeout, WriteTimeout: c.WriteTimeout, Token: c.AuthToken,
		Logger: log.With("front_end", "kafka"), Metrics: set,
	})
}

func buildSinks(c *config.Config, log *slog.Logger, set *metrics.Set) ([]agent.SinkSpec, error) {
	var specs []agent.SinkSpec
	for _, sc := range c.SinkConfigs {
		var s sink.Sink
		var err error
		switch sc.Type {
		case "queue":
			continue // buildQueues
		case "stdout":
			s = stdout.New(stdout.Options{})
		case "discard":
			s = discard.New()
		case "file":
			s, err = file.New(file.Options{Dir: sc.File.Path, RotateBytes: int64(sc.File.RotateBytes), RotateAge: orNegative(sc.File.RotateAge)})
		case "kafka":
			s, err = newKafka(sc, log, set)
		case "http":
			s, err = newHTTP(sc, log)
		case "rabbitmq":
			s, err = newRabbitMQ(sc, log, set)
		case "amqp1":
			s, err = newAMQP1(sc, log, set)
		case "sqs":
			s, err = newSQS(sc, log, set)
		case "nats":
			s, err = newNATS(sc, log, set)
		default:
			err = fmt.Errorf("sink type %q is not built into this version", sc.Type)
		}
		if err != nil {
			for _, prev := range specs {
				prev.Sink.Close(context.Background())
			}
			return nil, fmt.Errorf("SLUICE_%s_TYPE: %w", strings.ToUpper(sc.Name), err)
		}
		specs = append(specs, agent.SinkSpec{
			Name: sc.Name, Type: sc.Type, Sink: s, Topics: sc.Topics,
			MaxBacklogBytes: int64(sc.MaxBacklogBytes), BacklogPolicy: sc.BacklogPolicy, MaxAge: sc.MaxAge,
			BatchMessages: sc.BatchMessages, BatchBytes: int(sc.BatchBytes), Linger: sc.Linger,
			RetryMin: sc.RetryMin, RetryMax: sc.RetryMax,
		})
		if sc.Kafka != nil {
			specs[len(specs)-1].DeadLetterTopic = sc.Kafka.DeadletterTopic
		}
	}
	return specs, nil
}

// orNegative maps the config's "0 = off" onto the sink's "negative = off".
func orNegative(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func newKafka(sc config.Sink, log *slog.Logger, set *metrics.Set) (sink.Sink, error) {
	k := sc.Kafka
	o := kafka.Options{
		Name: sc.Name, Brokers: k.Brokers, ClientID: k.ClientID, Acks: k.Acks,
		Compression: k.Compression, Partitioner: k.Partitioner,
		WriteTimeout: k.WriteTimeout, DialTimeout: k.DialTimeout,
		MaxMessageBytes: int(k.MaxMessageBytes), BatchMessages: sc.BatchMessages,
		TopicMap: k.TopicMap, TopicPrefix: k.TopicPrefix, UnknownTopicGrace: k.UnknownTopicGrace,
		Logger: log.With("sink", sc.Name), Metrics: set,
	}
	if k.TLS {
		t, err := kafka.TLSConfig(k.TLSCaFile, k.TLSCertFile, k.TLSKeyFile, k.TLSServerName, k.TLSInsecureSkipVerify)
		if err != nil {
			return nil, err
		}
		o.TLS = t
	}
	if k.SASLMechanism != "" {
		pw, err := secret(k.SASLPassword, k.SASLPasswordFile, sc.Name, "SASL_PASSWORD_FILE")
		if err != nil {
			return nil, err
		}
		o.SASL = kafka.SASL{Mechanism: k.SASLMechanism, Username: k.SASLUsername, Password: pw}
	}
	return kafka.New(o)
}

func newHTTP(sc config.Sink, log *slog.Logger) (sink.Sink, error) {
	h := sc.HTTP
	token, err := secret(h.Token, h.TokenFile, sc.Name, "TOKEN_FILE")
	if err != nil {
		return nil, err
	}
	return httpsink.New(httpsink.Options{
		Name: sc.Name, URL: h.URL, Token: token, Headers: h.Headers, Gzip: h.Gzip, Timeout: h.Timeout,
		Logger: log.With("sink", sc.Name),
	})
}

func newRabbitMQ(sc config.Sink, log *slog.Logger, set *metrics.Set) (sink.Sink, error) {
	r := sc.RabbitMQ
	o := rabbitmq.Options{
		Name: sc.Name, URL: r.URL, Exchange: r.Exchange, RoutingKey: r.RoutingKey,
		WriteTimeout: r.WriteTimeout, DialTimeout: r.DialTimeout, Heartbeat: r.Heartbeat,
		ReconnectMax: r.ReconnectMax, UnroutableGrace: orNegative(r.UnroutableGrace),
		Logger: log.With("sink", sc.Name), Metrics: set,
	}
	if strings.HasPrefix(strings.ToLower(r.URL), "amqps:") {
		t, err := rabbitmq.TLSConfig(r.TLSCaFile, r.TLSCertFile, r.TLSKeyFile, r.TLSServerName)
		if err != nil {
			return nil, err
		}
		o.TLS = t
	}
	return rabbitmq.New(o)
}

func newAMQP1(sc config.Sink, log *slog.Logger, set *metrics.Set) (sink.Sink, error) {
	a := sc.AMQP1
	o := amqp1.Options{
		Name: sc.Name, URL: a.URL, Address: a.Address, TargetCapabilities: a.TargetCapabilities,
		WriteTimeout: a.WriteTimeout, DialTimeout: a.DialTimeout, MaxInFlight: a.MaxInFlight,
		UnknownAddressGrace: orNegative(a.UnknownAddressGrace),
		Logger:              log.With("sink", sc.Name), Metrics: set,
	}
	if len(a.TargetCapabilities) == 1 && a.TargetCapabilities[0] == "none" {
		o.TargetCapabilities = []string{}
	}
	if strings.HasPrefix(strings.ToLower(a.URL), "amqps:") {
		t, err := amqp1.TLSConfig(a.TLSCaFile, a.TLSServerName)
		if err != nil {
			return nil, err
		}
		o.TLS = t
	}
	return amqp1.New(o)
}

// newSQS builds an SQS sink. Credentials come from the AWS SDK's default
// chain (environment, web identity/IRSA, profiles, container and instance
// roles), not from SLUICE_ variables.
func newSQS(sc config.Sink, log *slog.Logger, set *metrics.Set) (sink.Sink, error) {
	q := sc.SQS
	return sqssink.New(sqssink.Options{
		Name: sc.Name, URL: q.URL, Region: q.Region, Endpoint: q.Endpoint,
		RequestBytes: int(q.RequestBytes), RequestTimeout: q.RequestTimeout,
		MaxInFlight: q.MaxInFlight, GroupID: q.GroupID,
		Logger: log.With("sink", sc.Name), Metrics: set,
	})
}

func newNATS(sc config.Sink, log *slog.Logger, set *metrics.Set) (sink.Sink, error) {
	n := sc.NATS
	o := natssink.Options{
		Name: sc.Name, URL: n.URL, Subject: n.Subject,
		AckTimeout: n.AckTimeout, MaxPending: n.MaxPending,
		ConnectTimeout: n.ConnectTimeout, ReconnectWait: n.ReconnectWait,
		NoStreamGrace: orNegative(n.NoStreamGrace),
		CredsFile:     n.CredsFile, NkeyFile: n.NkeyFile,
		Logger: log.With("sink", sc.Name), Metrics: set,
	}
	if n.TLS() {
		t, err := natssink.TLSConfig(n.TLSCaFile, n.TLSCertFile, n.TLSKeyFile, n.TLSServerName, n.TLSInsecureSkipVerify)
		if err != nil {
			return nil, err
		}
		o.TLS = t
	}
	return natssink.New(o)
}

// secret returns value, or the content of file when one is named (a
// trailing newline is not part of it); setting names the variable in errors.
func secret(value, file, sinkName, setting string) (string, error) {
	if file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("SLUICE_%s_%s: %w", strings.ToUpper(sinkName), setting, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// buildQueues opens the log of every sink of type queue, under
// <SPOOL_DIR>/queues/<name>, synced as the spool is. Under
// SPOOL_SYNC=always its fsyncs run in the spool's commit rounds, beside the
// spool's own (spool.Options.SyncVia): an acknowledgement and the pushes
// waiting meanwhile share one journal commit, as one fsync of Redis's
// event loop covers its XACKs and XADDs.
func buildQueues(c *config.Config, log *slog.Logger, sp *spool.Spool) ([]agent.QueueSpec, error) {
	var qs []agent.QueueSpec
	var via *spool.Spool
	if spool.SyncPolicy(c.SpoolSync) == spool.SyncAlways {
		via = sp
	}
	for _, sc := range c.SinkConfigs {
		if sc.Type != "queue" {
			continue
		}
		l, err := spool.Open(filepath.Join(c.SpoolDir, "queues", sc.Name), spool.Options{
			SegmentBytes: 1 << 20,
			Sync:         spool.SyncPolicy(c.SpoolSync),
			SyncInterval: c.SpoolSyncInterval,
			MaxBytes:     256 << 20,
			SyncVia:      via,
			Logger:       log.With("spool", "queue-"+sc.Name),
		})
		if err != nil {
			for _, q := range qs {
				q.Log.Close()
			}
			return nil, fmt.Errorf("queue %s: %w", sc.Name, err)
		}
		qs = append(qs, agent.QueueSpec{
			Name: sc.Name, Topics: sc.Topics, MaxBacklogBytes: int64(sc.MaxBacklogBytes),
			BacklogPolicy: sc.BacklogPolicy, MaxAge: sc.MaxAge, Log: l,
			Visibility: sc.Queue.Visibility, MaxAttempts: sc.Queue.MaxAttempts, Ordered: sc.Queue.Ordered,
		})
	}
	return qs, nil
}
