// Package queues benchmarks sluice's local pull queues beside real queue
// servers on the same machine, in the same run, each with durable
// semantics:
//
//   - sluice: queue sink, SLUICE_SPOOL_SYNC=always (a push is answered after
//     the fsync of its group commit; an ack after the fsync of the queue log);
//   - RabbitMQ (Debian's rabbitmq-server): durable classic queue, persistent
//     messages, publisher confirms, manual consumer acks, prefetch 10;
//   - NATS JetStream (Debian's nats-server): work-queue stream, file
//     storage, durable pull consumer, explicit acks (the last of each batch
//     waits for the server's confirmation);
//   - Redis Streams (Debian's redis-server): XADD, XREADGROUP, XACK, with
//     appendonly yes and appendfsync always.
//
// Same workload for each: 4 producers publish 1 KiB messages one at a time,
// each waiting for its durable confirmation; 4 consumers take batches of up
// to 10 and acknowledge each batch. Reported: messages per second from the
// first publish to the last ack, and the latency from publish to receipt
// (p50, p99).
//
//	cd bench/queues && go test -run x -bench . -benchtime 20000x -count 3
//
// It is its own module so that the clients of the other servers stay out of
// sluice's go.mod. A server that is missing is skipped.
package queues

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	producers = 4
	consumers = 4
	batch     = 10
	valueSize = 1024
)

// system is one queue under test: publish blocks until the message is
// durable; consume runs a consumer that calls got for each message and
// acknowledges each batch, until ctx ends.
type system struct {
	publish func(ctx context.Context, p int, value []byte) error
	consume func(ctx context.Context, c int, got func(value []byte)) error
}

// run drives n messages through s and reports the rates.
func run(b *testing.B, s system) {
	n := b.N
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var received atomic.Int64
	done := make(chan struct{})
	var once sync.Once
	lat := make([][]time.Duration, consumers)
	var cwg sync.WaitGroup
	errs := make(chan error, producers+consumers)
	b.ResetTimer()
	srv0, cli0, dev0 := serverCPU(), clientCPU(), deviceWrites()
	t0 := time.Now()
	for c := range consumers {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			err := s.consume(ctx, c, func(v []byte) {
				lat[c] = append(lat[c], time.Duration(time.Now().UnixNano()-int64(binary.LittleEndian.Uint64(v))))
				if received.Add(1) >= int64(n) {
					once.Do(func() { close(done) })
				}
			})
			if err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("consumer %d: %w", c, err)
			}
		}()
	}
	var pwg sync.WaitGroup
	var next atomic.Int64
	for p := range producers {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			v := make([]byte, valueSize)
			for i := range v {
				v[i] = 'a' + byte(i%26)
			}
			for next.Add(1) <= int64(n) {
				binary.LittleEndian.PutUint64(v, uint64(time.Now().UnixNano()))
				if err := s.publish(ctx, p, v); err != nil {
					errs <- fmt.Errorf("producer %d: %w", p, err)
					return
				}
			}
		}()
	}
	select {
	case <-done:
	case err := <-errs:
		b.Fatal(err)
	case <-time.After(10 * time.Minute):
		b.Fatalf("timed out with %d of %d received", received.Load(), n)
	}
	// The last batch's ack is not timed: at most one batch per consumer.
	elapsed := time.Since(t0)
	srvCPU, cliCPU, devW := serverCPU()-srv0, clientCPU()-cli0, deviceWrites()-dev0
	b.StopTimer()
	pwg.Wait()
	cancel()
	cwg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	// CPU per message, server and benchmark process (producers and
	// consumers): on a machine with few cores, what a round trip waits
	// for besides the disk.
	b.ReportMetric(float64(srvCPU.Microseconds())/float64(n), "srv-cpu-µs/msg")
	b.ReportMetric(float64(cliCPU.Microseconds())/float64(n), "cli-cpu-µs/msg")
	// Writes the data's block device completed (every process's), per
	// message: what the fsyncs cost the disk.
	b.ReportMetric(float64(devW)/float64(n), "dev-writes/msg")
	b.ReportMetric(0, "ns/op")
}

// dataDir is the directory the server under test keeps its data in.
var dataDir string

// deviceWrites is the number of writes the block device holding dataDir
// completed, from /sys/dev/block/MAJOR:MINOR/stat (its fifth field).
func deviceWrites() int64 {
	var st syscall.Stat_t
	if dataDir == "" || syscall.Stat(dataDir, &st) != nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/stat", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 5 {
		return 0
	}
	n, _ := strconv.ParseInt(f[4], 10, 64)
	return n
}

// serverGroup is the process group of the server under test.
var serverGroup int

// serverCPU is the user and system CPU time of every process in the
// server's process group (RabbitMQ runs more than one), from /proc.
func serverCPU() time.Duration {
	ents, _ := os.ReadDir("/proc")
	var ticks int64
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command (which may hold spaces): state is 3,
		// pgrp 5, utime 14, stime 15.
		i := bytes.LastIndexByte(st, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(st[i+1:]))
		if len(f) < 13 || f[2] != strconv.Itoa(serverGroup) {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// clientCPU is this process's user and system CPU time.
func clientCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func freePort(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startServer runs cmd (its own process group) until the benchmark ends,
// and waits until addr accepts connections.
func startServer(b *testing.B, addr string, cmd *exec.Cmd) {
	logf, _ := os.Create(filepath.Join(b.TempDir(), "server.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	serverGroup = cmd.Process.Pid
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	b.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if os.Getenv("BENCH_SHOWLOG") != "" {
			l, _ := os.ReadFile(logf.Name())
			b.Logf("server log:\n%s", l)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logf.Name())
			b.Fatalf("%s exited:\n%s", cmd.Path, log)
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s not listening on %s", cmd.Path, addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func need(b *testing.B, bin string) string {
	p, err := exec.LookPath(bin)
	if err != nil {
		b.Skipf("%s is not installed (Debian package; scripts/deps/*.sh)", bin)
	}
	return p
}

// fsType names the file system of dir: fsync on tmpfs costs nothing and
// would measure nothing.
func fsType(dir string) string {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return "unknown"
	}
	switch st.Type {
	case 0xEF53:
		return "ext4"
	case 0x01021994:
		return "tmpfs"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	}
	return fmt.Sprintf("0x%x", st.Type)
}

func logFS(b *testing.B, dir string) {
	dataDir = dir
	if t := fsType(dir); t == "tmpfs" {
		b.Fatalf("%s is on tmpfs: fsync is free there, the numbers would mean nothing", dir)
	} else {
		b.Logf("data on %s (%s)", dir, t)
	}
}

func env(kv ...string) []string {
	out := []string{"PATH=" + os.Getenv("PATH")}
	for i := 0; i < len(kv); i += 2 {
		out = append(out, kv[i]+"="+kv[i+1])
	}
	return out
}
