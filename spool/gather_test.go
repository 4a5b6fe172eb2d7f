package spool

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/wal"
)

// slowGather lets a commit wait d for the writers of the round before
// (instead of about one fsync), so that what the tests count does not
// depend on the machine's speed.
func slowGather(t *testing.T, d time.Duration) {
	t.Helper()
	gatherWait = func(time.Duration) time.Duration { return d }
	t.Cleanup(func() { gatherWait = func(l time.Duration) time.Duration { return min(l, time.Millisecond) } })
}

// writers runs n goroutines, each appending one record at a time and
// waiting for it, until total appends are done.
func writers(t *testing.T, s *Spool, n, total int) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for next.Add(1) <= int64(total) {
				if _, err := s.Append(context.Background(), []byte("job")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// Writers that come back as soon as they are answered end up in one group
// commit instead of two taking turns (each waiting for the other's fsync
// before its own): about one commit per round of four appends.
func TestGatherMergesWritersThatComeBack(t *testing.T) {
	slowGather(t, 500*time.Millisecond)
	s := openT(t, t.TempDir(), Options{})
	const rounds = 40
	writers(t, s, 4, 4*rounds)
	st := s.Stats()
	// Without gathering the writers split into groups that take turns:
	// about twice as many commits.
	if st.Commits > rounds+4 {
		t.Fatalf("%d commits for %d rounds of 4 writers (%d gathers, %d gave up)", st.Commits, rounds, st.Gathers, st.GatherTimeouts)
	}
	// Only the last round can miss a writer that had no append left.
	if st.GatherTimeouts > 1 {
		t.Fatalf("%d gathers gave up, want at most 1", st.GatherTimeouts)
	}
}

// A lone writer never waits for anybody.
func TestGatherLeavesALoneWriterAlone(t *testing.T) {
	slowGather(t, time.Hour)
	s := openT(t, t.TempDir(), Options{})
	writers(t, s, 1, 50)
	if st := s.Stats(); st.Gathers != 0 || st.Commits != 50 {
		t.Fatalf("lone writer: %d commits, %d gathers", st.Commits, st.Gathers)
	}
}

// Only SyncAlways gathers: other policies answer before any fsync.
func TestGatherOnlyUnderSyncAlways(t *testing.T) {
	slowGather(t, time.Hour)
	for _, p := range []SyncPolicy{SyncInterval, SyncNever} {
		s := openT(t, t.TempDir(), Options{Sync: p})
		writers(t, s, 4, 200)
		if st := s.Stats(); st.Gathers != 0 {
			t.Fatalf("%s: %d gathers", p, st.Gathers)
		}
	}
}

// holdFirstFsync holds the next WAL fsync until release is closed; syncs
// counts the fsyncs begun.
func holdFirstFsync(t *testing.T) (release chan struct{}, syncs *atomic.Int64) {
	t.Helper()
	release, syncs = make(chan struct{}), new(atomic.Int64)
	walSync = func(l *wal.Log) error {
		if syncs.Add(1) == 1 {
			<-release
		}
		return l.Sync()
	}
	t.Cleanup(func() { walSync = (*wal.Log).Sync })
	return release, syncs
}

// Closing the spool ends a wait for a writer that is not coming back;
// what the waiting commit held is written and answered.
func TestCloseEndsAGather(t *testing.T) {
	slowGather(t, time.Hour)
	s := openT(t, t.TempDir(), Options{})
	release, syncs := holdFirstFsync(t)
	errs := make(chan error, 3)
	appendOne := func() {
		_, err := s.Append(context.Background(), []byte("job"))
		errs <- err
	}
	go appendOne() // a commit of one, held in its fsync
	waitFor(t, func() bool { return syncs.Load() == 1 })
	go appendOne() // two more queue up meanwhile
	go appendOne()
	waitFor(t, func() bool { return len(s.appendCh) == 2 })
	close(release)
	// The next commit waits for the first writer, which has nothing more.
	waitFor(t, func() bool { return s.Stats().Gathers == 1 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatalf("append: %v", err)
		}
	}
}

// A commit of lazy appends only is not fsynced, so it does not wait for
// writers to share an fsync with: a queue's pull waits for its attempt
// counts to be written, and a gather only delayed it (up to about one
// fsync of the queue log, which shares the spool's round).
func TestGatherLeavesLazyAppendsAlone(t *testing.T) {
	slowGather(t, time.Hour)
	s := openT(t, t.TempDir(), Options{})
	release, syncs := holdFirstFsync(t)
	appendOne := func() error {
		_, err := s.Append(context.Background(), []byte("job"))
		return err
	}
	// A round that answers four writers: one held in its fsync while
	// three queue up, then the first comes back and the gather takes it.
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := appendOne(); err != nil {
			t.Error(err)
		}
		if err := appendOne(); err != nil {
			t.Error(err)
		}
	})
	waitFor(t, func() bool { return syncs.Load() == 1 })
	for range 3 {
		wg.Go(func() {
			if err := appendOne(); err != nil {
				t.Error(err)
			}
		})
	}
	waitFor(t, func() bool { return len(s.appendCh) == 3 })
	close(release)
	wg.Wait()
	// (The first writer may be back before the second round starts: then
	// that round needs no gather.)
	st := s.Stats()
	if st.Commits != 2 || st.GatherTimeouts != 0 {
		t.Fatalf("set-up: %d commits, %d gathers gave up; want two, the second of four", st.Commits, st.GatherTimeouts)
	}
	gathers := st.Gathers
	// Four answered: an ordinary append alone now would wait for three
	// more. A lazy one is written at once.
	done := make(chan error, 1)
	go func() {
		_, err := s.AppendLazy(context.Background(), []byte("attempts"))
		done <- err
	}()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if st := s.Stats(); st.Gathers != gathers {
				t.Fatalf("%d gathers after a lazy append, want %d", st.Gathers, gathers)
			}
			return
		case <-tick.C:
			if st := s.Stats(); st.Gathers != gathers {
				t.Fatalf("a commit of a lazy append only waits for writers (%d gathers, %d before it)", st.Gathers, gathers)
			}
		}
	}
}
