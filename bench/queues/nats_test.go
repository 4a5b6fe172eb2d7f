package queues

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func BenchmarkNATSJetStream(b *testing.B) {
	bin := need(b, "nats-server")
	dir := b.TempDir()
	logFS(b, dir)
	port := freePort(b)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	conf := filepath.Join(dir, "nats.conf")
	// sync_interval (fsync each write) exists from nats-server 2.10 on;
	// NATS_SYNC=always asks for it on a server that has it.
	sync := ""
	if os.Getenv("NATS_SYNC") == "always" {
		sync = "sync_interval: always\n"
	}
	os.WriteFile(conf, []byte(fmt.Sprintf("listen: %q\njetstream {\n store_dir: %q\n %s}\n", addr, filepath.Join(dir, "js"), sync)), 0o644)
	startServer(b, addr, exec.Command(bin, "-c", conf))
	nc, err := nats.Connect("nats://" + addr)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := js.AddStream(&nats.StreamConfig{Name: "BENCH", Subjects: []string{"bench"}, Retention: nats.WorkQueuePolicy, Storage: nats.FileStorage}); err != nil {
		b.Fatal(err)
	}
	if _, err := js.AddConsumer("BENCH", &nats.ConsumerConfig{Durable: "workers", AckPolicy: nats.AckExplicitPolicy, MaxAckPending: 10000}); err != nil {
		b.Fatal(err)
	}
	run(b, system{
		publish: func(ctx context.Context, _ int, v []byte) error {
			_, err := js.Publish("bench", v, nats.Context(ctx))
			return err
		},
		consume: func(ctx context.Context, _ int, got func([]byte)) error {
			sub, err := js.PullSubscribe("bench", "workers", nats.Bind("BENCH", "workers"))
			if err != nil {
				return err
			}
			for ctx.Err() == nil {
				msgs, err := sub.Fetch(batch, nats.MaxWait(time.Second))
				if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
					continue
				}
				if err != nil {
					return err
				}
				for i, m := range msgs {
					got(m.Data)
					if i == len(msgs)-1 {
						err = m.AckSync() // confirmed by the server: the acks before it too
					} else {
						err = m.Ack()
					}
					if err != nil {
						return err
					}
				}
			}
			return nil
		},
	})
}
