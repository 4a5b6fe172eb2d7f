package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sluiceio/sluice/internal/loadgen"
)

const benchUsage = `usage: sluice bench [flags]

Pushes load at a running agent and prints throughput, latency percentiles
and errors by code. Closed loop by default (every connection sends its next
request as soon as the previous one was answered); -rate sets an open loop
whose latency counts from each request's scheduled time. With -verify-file
or -verify-kafka it then reads the sink back and checks that every acked
message arrived, in order per key; the exit status is 1 when one was lost or
out of order.

flags:
`

// benchCmd runs "sluice bench".
func benchCmd(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	var (
		url         = fs.String("url", defaultBenchURL(), "ingest listener: http://host:port or unix:/path; the default follows SLUICE_LISTEN")
		mode        = fs.String("mode", string(loadgen.DefaultMode), "push API: single (one message per request), ndjson (POST /v1/topics/{topic}), json (POST /v1/messages)")
		size        = fs.Int("size", loadgen.DefaultSize, "message value size in bytes")
		batch       = fs.Int("batch", loadgen.DefaultBatch, "messages per request (ndjson, json)")
		conns       = fs.Int("c", loadgen.DefaultConnections, "connections, one request in flight each")
		duration    = fs.Duration("d", loadgen.DefaultDuration, "run duration (with -n: whichever ends first)")
		count       = fs.Int64("n", 0, "total messages to send (0 = no limit; alone, it replaces -d)")
		rate        = fs.Float64("rate", 0, "target messages per second over all connections (0 = closed loop)")
		topic       = fs.String("topic", loadgen.DefaultTopic, "topic name; with -topics N: <topic>-0 ... <topic>-<N-1>")
		topics      = fs.Int("topics", 1, "spread messages over this many topics (by key)")
		keys        = fs.Int("keys", loadgen.DefaultKeys, "distinct keys k0...; 0 = messages without a key")
		ack         = fs.String("ack", "", "\"delivered\": send Sluice-Ack: delivered (the reply waits for every sink)")
		ackTimeout  = fs.Duration("ack-timeout", 0, "Sluice-Timeout with -ack delivered (0 = the agent's default)")
		token       = fs.String("token", os.Getenv("SLUICE_AUTH_TOKEN"), "bearer token (default SLUICE_AUTH_TOKEN)")
		timeout     = fs.Duration("timeout", loadgen.DefaultTimeout, "per-request timeout")
		jsonOut     = fs.Bool("json", false, "print the report as JSON")
		quiet       = fs.Bool("q", false, "no progress line on stderr")
		spoolDir    = fs.String("spool-dir", os.Getenv("SLUICE_SPOOL_DIR"), "the agent's spool directory, to print its filesystem type (default SLUICE_SPOOL_DIR)")
		verifyFile  = fs.String("verify-file", "", "after the load, read this file sink directory and verify the acked messages")
		verifyKafka = fs.String("verify-kafka", "", "after the load, read the topics from these Kafka brokers (comma list) and verify")
		verifyWait  = fs.Duration("verify-wait", 30*time.Second, "how long to wait for every acked message to be delivered")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	cfg := loadgen.Config{
		URL: *url, Mode: loadgen.Mode(*mode), Size: *size, Batch: *batch, Connections: *conns,
		Duration: *duration, Count: *count, Rate: *rate, Topic: *topic, Topics: *topics, Keys: *keys,
		AckTimeout: *ackTimeout, Token: *token, Timeout: *timeout,
		Verify: *verifyFile != "" || *verifyKafka != "",
	}
	if *count > 0 && !set["d"] {
		cfg.Duration = 0
	}
	if *keys == 0 {
		cfg.Keys = -1
	}
	switch *ack {
	case "", "spooled":
	case "delivered":
		cfg.AckDelivered = true
	default:
		return fmt.Errorf("bench: -ack %q: want delivered or spooled", *ack)
	}
	for name, v := range map[string]int{"size": *size, "batch": *batch, "c": *conns, "topics": *topics} {
		if v < 1 {
			return fmt.Errorf("bench: -%s must be at least 1", name)
		}
	}
	if *verifyFile != "" && *verifyKafka != "" {
		return errors.New("bench: use one of -verify-file and -verify-kafka")
	}
	if !*quiet {
		cfg.Progress = os.Stderr
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	stop() // a second Ctrl-C during verification exits at once

	var verifyErr error
	if cfg.Verify {
		var read func(context.Context) ([]loadgen.Delivered, error)
		if *verifyFile != "" {
			read = func(context.Context) ([]loadgen.Delivered, error) { return loadgen.ReadFileSink(*verifyFile) }
		} else {
			brokers := strings.Split(*verifyKafka, ",")
			read = func(ctx context.Context) ([]loadgen.Delivered, error) {
				return loadgen.ReadKafka(ctx, brokers, rep.Topics)
			}
		}
		var status io.Writer = os.Stderr
		if *quiet {
			status = io.Discard
		}
		v, err := waitDelivered(read, rep, *verifyWait, status)
		if err != nil {
			return err
		}
		rep.Verify = &v
		if !v.OK() {
			verifyErr = fmt.Errorf("verify failed: %d lost, %d out of order", v.Lost, v.OutOfOrder)
		}
	}

	if *jsonOut {
		b, err := rep.JSON()
		if err != nil {
			return err
		}
		fmt.Println(string(b))
	} else {
		rep.WriteText(os.Stdout)
		if *spoolDir != "" {
			fmt.Printf("spool fs    %s (%s)\n", loadgen.FSType(*spoolDir), *spoolDir)
		}
	}
	return verifyErr
}

// waitDelivered reads the sink until every acked message of the run was
// delivered or wait is over, and returns the last verification.
func waitDelivered(read func(context.Context) ([]loadgen.Delivered, error), rep loadgen.Report, wait time.Duration, status io.Writer) (loadgen.VerifyReport, error) {
	deadline := time.Now().Add(wait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), max(time.Until(deadline), 10*time.Second))
		got, err := read(ctx)
		cancel()
		var v loadgen.VerifyReport
		if err == nil {
			v = loadgen.Verify(rep.AckedIDs, loadgen.FilterRun(got, rep.RunID))
			if v.Lost == 0 {
				return v, nil
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				return v, fmt.Errorf("verify: read sink: %w", err)
			}
			return v, nil
		}
		if err != nil {
			fmt.Fprintf(status, "verify: read sink: %v; retrying\n", err)
		} else {
			fmt.Fprintf(status, "verify: %d of %d acked messages delivered; waiting\n", v.Acked-v.Lost, v.Acked)
		}
		time.Sleep(min(time.Second, max(time.Until(deadline), 0)))
	}
}

// defaultBenchURL follows SLUICE_LISTEN: "unix:/path" as is, "host:port"
// as http://host:port (a wildcard host becomes 127.0.0.1).
func defaultBenchURL() string {
	l := os.Getenv("SLUICE_LISTEN")
	switch {
	case l == "":
		return loadgen.DefaultURL
	case strings.HasPrefix(l, "unix:"):
		return l
	}
	return "http://" + loopback(l)
}
