// Command kfakebroker runs one in-process Kafka-protocol broker
// (github.com/twmb/franz-go/pkg/kfake) on a loopback port, with seeded
// topics, for the broker up/down cells of scripts/bench-matrix.
//
//	kfakebroker [-port 0] [-topics bench] [-partitions 6] [-lifetime 1h]
//
// It prints the broker's address (127.0.0.1:PORT) as the first line of
// stdout and exits on SIGTERM or SIGINT, or after -lifetime in any case.
// kfake keeps everything in memory: a long run grows with what it stores.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kfakebroker:", err)
		os.Exit(1)
	}
}

func run() error {
	port := flag.Int("port", 0, "loopback port to listen on (0 = any free port)")
	topics := flag.String("topics", "bench", "comma list of topics to create")
	partitions := flag.Int("partitions", 6, "partitions per topic")
	lifetime := flag.Duration("lifetime", time.Hour, "exit after this long even without a signal")
	flag.Parse()
	if *port < 0 || *port > 65535 || *partitions < 1 {
		return fmt.Errorf("-port must be 0-65535 and -partitions at least 1")
	}

	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(*port)}
	if *topics != "" {
		opts = append(opts, kfake.SeedTopics(int32(*partitions), strings.Split(*topics, ",")...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Println(c.ListenAddrs()[0])

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *lifetime)
	defer cancel()
	<-ctx.Done()
	return nil
}
