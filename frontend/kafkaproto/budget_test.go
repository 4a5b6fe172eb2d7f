package kafkaproto

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

func TestBudget(t *testing.T) {
	b := newBudget(10)
	if !b.acquire(8) {
		t.Fatal("first acquire failed")
	}
	got := make(chan bool)
	go func() { got <- b.acquire(5) }()
	select {
	case <-got:
		t.Fatal("acquire beyond the budget did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	b.release(8)
	if !<-got {
		t.Fatal("acquire after release failed")
	}
	go func() { got <- b.acquire(100) }() // 5 held: waits (larger than the budget, it needs to be alone)
	b.close()
	if <-got {
		t.Fatal("acquire after close succeeded")
	}
}

// TestSlowPeer: a peer that announces a large request and stalls is cut
// off after ReadTimeout, and the bytes it reserved are free again.
func TestSlowPeer(t *testing.T) {
	e := start(t, t.TempDir(), Options{ReadTimeout: 200 * time.Millisecond, MaxInflightBytes: 1 << 20,
		Partitions: map[string]int32{"t": 1}})
	slow := dial(t, e.srv.Addr())
	slow.send([]byte{0, 0x0f, 0, 0, 0, keyProduce}) // 983040 bytes announced, 2 sent
	if !slow.closed() {
		t.Fatal("stalled connection not closed")
	}
	c := dial(t, e.srv.Addr())
	if got := c.produce("t", 0, recordBatch(-1, -1, 0, 0, "v")); got.ErrorCode != 0 {
		t.Fatalf("after the slow peer: %v", kerr.ErrorForCode(got.ErrorCode))
	}
}
