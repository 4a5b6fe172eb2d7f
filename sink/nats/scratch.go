package nats

import (
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// scratch holds what one Write allocates per message: the encoded copies
// and their outcomes. A Write that ran to its end hands it back for the
// next one (every PubAck future had resolved: nats.go no longer reads the
// messages); a Write cut short leaves it to the garbage collector, since
// its publisher goroutine may still use it. Reuse keeps a 1 MiB batch from
// allocating 1 MiB of copies every time.
type scratch struct {
	nm    []natsgo.Msg
	final []error
	raw   []error
	acks  []*jetstream.PubAck
	futs  []jetstream.PubAckFuture
	arena []byte
}

// maxScratchArena bounds the copy buffer kept between Writes.
const maxScratchArena = 8 << 20

// getScratch returns a cleared scratch for n messages of size value bytes
// in all.
func (w *Writer) getScratch(n, size int) *scratch {
	sc := w.spare.Swap(nil)
	if sc == nil {
		sc = &scratch{}
	}
	if cap(sc.nm) < n {
		sc.nm = make([]natsgo.Msg, n)
		sc.final = make([]error, n)
		sc.raw = make([]error, n)
		sc.acks = make([]*jetstream.PubAck, n)
		sc.futs = make([]jetstream.PubAckFuture, n)
	}
	sc.nm, sc.final, sc.raw, sc.acks, sc.futs = sc.nm[:n], sc.final[:n], sc.raw[:n], sc.acks[:n], sc.futs[:n]
	if cap(sc.arena) < size {
		sc.arena = make([]byte, 0, size)
	}
	return sc
}

// putScratch keeps sc for the next Write, without references to this
// one's messages.
func (w *Writer) putScratch(sc *scratch) {
	clear(sc.nm)
	clear(sc.final)
	clear(sc.raw)
	clear(sc.acks)
	clear(sc.futs)
	if cap(sc.arena) > maxScratchArena {
		sc.arena = nil
	}
	w.spare.Store(sc)
}
