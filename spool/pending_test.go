package spool

import (
	"context"
	"errors"
	"testing"
	"time"
)

// gate is an OnFsync hook that holds the commit goroutine inside the fsync
// step until released: an append that times out while it is held is
// written afterwards.
type gate struct {
	hold    chan struct{}
	entered chan struct{}
}

func newGate() *gate { return &gate{hold: make(chan struct{}), entered: make(chan struct{}, 16)} }

func (g *gate) onFsync(time.Duration) {
	g.entered <- struct{}{}
	<-g.hold
}

// An append whose waiter gave up still delivers its outcome: Wait says
// ErrTimeout, Outcome then returns the ID of the record that was written,
// and the record is on disk after a reopen.
func TestPendingOutcomeOutlivesTimeout(t *testing.T) {
	dir := t.TempDir()
	g := newGate()
	s := openT(t, dir, Options{AppendTimeout: 50 * time.Millisecond, OnFsync: g.onFsync})
	b := NewBatch(1, 8)
	b.Add([]byte("late"))
	p, err := s.AppendAsync(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	<-g.entered // written, fsync in progress
	if _, err := p.Wait(context.Background()); !errors.Is(err, ErrTimeout) {
		t.Fatalf("wait: %v, want ErrTimeout", err)
	}
	if _, err := p.Wait(context.Background()); !errors.Is(err, ErrTimeout) {
		t.Fatalf("second wait past the deadline: %v, want ErrTimeout", err)
	}
	close(g.hold)
	id, err := p.Outcome()
	if err != nil || id.Seq != 1 || id.Epoch != s.Epoch() {
		t.Fatalf("outcome: %+v %v", id, err)
	}
	if id2, err := p.Wait(context.Background()); err != nil || id2 != id {
		t.Fatalf("wait after the outcome: %+v %v", id2, err)
	}
	s.Close()
	s = openT(t, dir, Options{})
	r, err := s.Get(1)
	if err != nil || string(r.Data) != "late" {
		t.Fatalf("after reopen: %q %v", r.Data, err)
	}
}

// Closing the spool with appends queued behind a commit: each pending
// append's outcome is either its ID, and then the record is on disk, or
// ErrClosed, and then it is not. Outcome never hangs.
func TestPendingOutcomeAcrossClose(t *testing.T) {
	dir := t.TempDir()
	g := newGate()
	s, err := Open(dir, Options{Logger: quiet(), OnFsync: g.onFsync})
	if err != nil {
		t.Fatal(err)
	}
	var ps []*Pending
	for i := range 5 {
		b := NewBatch(1, 16)
		b.Add(payload(i))
		p, err := s.AppendAsync(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
		if i == 0 {
			<-g.entered // the first commit holds the others in the queue
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	time.Sleep(20 * time.Millisecond) // let Close signal the commit goroutine
	close(g.hold)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	written := map[uint64]bool{}
	for i, p := range ps {
		id, err := p.Outcome()
		switch {
		case err == nil:
			written[id.Seq] = true
		case errors.Is(err, ErrClosed):
		default:
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if !written[1] {
		t.Fatalf("the append being committed was not reported written: %v", written)
	}
	s = openT(t, dir, Options{})
	if s.LastSeq() != uint64(len(written)) {
		t.Fatalf("%d records on disk, %d reported written", s.LastSeq(), len(written))
	}
}
