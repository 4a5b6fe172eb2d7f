package main

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// errClosed answers a request that arrives after the committer stopped.
var errClosed = errors.New("committer closed")

// committer is the durable-ack ceiling: the smallest server that answers a
// push only once its body is on disk. Handlers hand their bodies to one
// goroutine, which appends everything waiting with one write(2) and one
// fdatasync(2) and then releases them: no envelope, no checksum, no index,
// no WAL library. Whatever sluice does above that is its own cost.
type committer struct {
	f    *os.File
	fd   int
	reqs chan *commitReq
	buf  []byte // the pending bodies of one commit, back to back
	done chan struct{}

	mu     sync.RWMutex // guards closed against sends on reqs
	closed bool

	commits, records atomic.Uint64
}

type commitReq struct {
	body []byte // the handler's; valid until it is released
	res  chan error
}

var reqPool = sync.Pool{New: func() any { return &commitReq{res: make(chan error, 1)} }}

func newCommitter(f *os.File, queue int) *committer {
	c := &committer{f: f, fd: int(f.Fd()), reqs: make(chan *commitReq, queue), done: make(chan struct{})}
	go c.run()
	return c
}

// commit returns once body is written and fdatasynced, or with the error
// that kept it from being so.
func (c *committer) commit(body []byte) error {
	r := reqPool.Get().(*commitReq)
	r.body = body
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return errClosed
	}
	c.reqs <- r
	c.mu.RUnlock()
	err := <-r.res
	r.body = nil
	reqPool.Put(r)
	return err
}

func (c *committer) run() {
	defer close(c.done)
	var batch []*commitReq
	for r := range c.reqs {
		batch = append(batch[:0], r)
	more:
		for {
			select {
			case r, ok := <-c.reqs:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		c.buf = c.buf[:0]
		for _, r := range batch {
			c.buf = append(c.buf, r.body...)
		}
		_, err := c.f.Write(c.buf)
		if err == nil {
			err = syscall.Fdatasync(c.fd)
		}
		c.commits.Add(1)
		c.records.Add(uint64(len(batch)))
		for _, r := range batch {
			r.res <- err
		}
	}
}

// close stops the committer once the requests already handed to it are
// released.
func (c *committer) close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.reqs)
	}
	c.mu.Unlock()
	<-c.done
}
