package kafkaproto

import "sync"

// budget bounds the request bytes all connections hold at once: a
// connection reads a frame only once its size fits. A request larger than
// the whole budget waits until it is alone.
type budget struct {
	mu     sync.Mutex
	cond   *sync.Cond
	max    int64
	used   int64
	closed bool
}

func newBudget(max int64) *budget {
	b := &budget{max: max}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// acquire waits until n bytes fit (or the budget closes: false).
func (b *budget) acquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for !b.closed && b.used > 0 && b.used+n > b.max {
		b.cond.Wait()
	}
	if b.closed {
		return false
	}
	b.used += n
	return true
}

// wait waits, holding nothing of the budget, until n more bytes fit or
// nothing is in use (false once the budget is closed). It takes nothing:
// the caller adds what it then holds (add), which may go past max by what
// it adds.
func (b *budget) wait(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for !b.closed && b.used > 0 && b.used+n > b.max {
		b.cond.Wait()
	}
	return !b.closed
}

// fits reports whether n more bytes fit now.
func (b *budget) fits(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used+n <= b.max
}

// add counts n bytes held, whether or not they fit.
func (b *budget) add(n int64) {
	b.mu.Lock()
	b.used += n
	b.mu.Unlock()
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
	b.cond.Broadcast()
}

// close wakes every waiter; later acquires fail.
func (b *budget) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cond.Broadcast()
}
