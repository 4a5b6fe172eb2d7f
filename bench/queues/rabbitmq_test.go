package queues

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// BenchmarkRabbitMQ runs Debian's RabbitMQ as a node of its own: own
// node name, ports, epmd port, data and cookie under a temporary
// directory. The epmd it starts is stopped at the end.
func BenchmarkRabbitMQ(b *testing.B) {
	bin := "/usr/lib/rabbitmq/bin/rabbitmq-server"
	if _, err := os.Stat(bin); err != nil {
		b.Skip("rabbitmq-server is not installed (Debian package rabbitmq-server)")
	}
	dir := b.TempDir()
	logFS(b, dir)
	port, dist, epmd := freePort(b), freePort(b), freePort(b)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	plugins := filepath.Join(dir, "enabled_plugins")
	os.WriteFile(plugins, []byte("[].\n"), 0o644)
	node := fmt.Sprintf("bench%d@localhost", port)
	e := env("HOME", dir, "RABBITMQ_NODENAME", node, "RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1",
		"RABBITMQ_NODE_PORT", strconv.Itoa(port), "RABBITMQ_DIST_PORT", strconv.Itoa(dist), "ERL_EPMD_PORT", strconv.Itoa(epmd),
		"RABBITMQ_MNESIA_BASE", filepath.Join(dir, "mnesia"), "RABBITMQ_LOG_BASE", filepath.Join(dir, "log"),
		"RABBITMQ_ENABLED_PLUGINS_FILE", plugins, "RABBITMQ_CONFIG_FILE", filepath.Join(dir, "rabbitmq"),
		"RABBITMQ_PID_FILE", filepath.Join(dir, "pid"))
	b.Cleanup(func() {
		c := exec.Command("epmd", "-port", strconv.Itoa(epmd), "-kill")
		c.Env = e
		c.Run()
	})
	cmd := exec.Command(bin)
	cmd.Env = e
	startServer(b, addr, cmd)
	var conn *amqp.Connection
	var err error
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if conn, err = amqp.Dial("amqp://guest:guest@" + addr + "/"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	setup, _ := conn.Channel()
	if _, err := setup.QueueDeclare("bench", true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	pubs := make([]*amqp.Channel, producers)
	for i := range pubs {
		pubs[i], _ = conn.Channel()
		if err := pubs[i].Confirm(false); err != nil {
			b.Fatal(err)
		}
	}
	run(b, system{
		publish: func(ctx context.Context, p int, v []byte) error {
			dc, err := pubs[p].PublishWithDeferredConfirmWithContext(ctx, "", "bench", false, false,
				amqp.Publishing{DeliveryMode: amqp.Persistent, ContentType: "application/octet-stream", Body: v})
			if err != nil {
				return err
			}
			// A confirm that never comes (amqp091-go#46, #182) fails the
			// run instead of hanging it.
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			ok, err := dc.WaitContext(wctx)
			if err == nil && !ok {
				err = fmt.Errorf("nacked by the broker")
			}
			return err
		},
		consume: func(ctx context.Context, c int, got func([]byte)) error {
			ch, err := conn.Channel()
			if err != nil {
				return err
			}
			// Not closed here: Channel.Close waits for the server while
			// deliveries nobody reads any more block the connection's
			// reader (the run hung here). The connection's close at the
			// end of the benchmark ends the channel.
			if err := ch.Qos(batch, 0, false); err != nil {
				return err
			}
			ds, err := ch.ConsumeWithContext(ctx, "bench", fmt.Sprint("c", c), false, false, false, false, nil)
			if err != nil {
				return err
			}
			n := 0
			for {
				select {
				case <-ctx.Done():
					return nil
				case d, ok := <-ds:
					if !ok {
						return nil
					}
					got(d.Body)
					// Acknowledge the batch: every 10, or when nothing
					// more is waiting.
					if n++; n%batch == 0 || len(ds) == 0 {
						if err := d.Ack(true); err != nil {
							return err
						}
					}
				}
			}
		},
	})
}
