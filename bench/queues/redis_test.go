package queues

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func BenchmarkRedisStreams(b *testing.B) {
	bin := need(b, "redis-server")
	dir := b.TempDir()
	logFS(b, dir)
	port := freePort(b)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	startServer(b, addr, exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", ""))
	rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: producers + consumers + 2})
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.XGroupCreateMkStream(ctx, "bench", "workers", "0").Err(); err != nil {
		b.Fatal(err)
	}
	run(b, system{
		publish: func(ctx context.Context, _ int, v []byte) error {
			return rdb.XAdd(ctx, &redis.XAddArgs{Stream: "bench", Values: []any{"v", v}}).Err()
		},
		consume: func(ctx context.Context, c int, got func([]byte)) error {
			for ctx.Err() == nil {
				res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "workers", Consumer: fmt.Sprint("c", c),
					Streams: []string{"bench", ">"}, Count: batch, Block: time.Second}).Result()
				if err == redis.Nil {
					continue
				}
				if err != nil {
					return err
				}
				var ids []string
				for _, m := range res[0].Messages {
					got([]byte(m.Values["v"].(string)))
					ids = append(ids, m.ID)
				}
				if err := rdb.XAck(ctx, "bench", "workers", ids...).Err(); err != nil {
					return err
				}
			}
			return nil
		},
	})
}
