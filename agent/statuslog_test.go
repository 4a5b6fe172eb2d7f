package agent

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// openTestLog opens a log of a set of max entries, with a lock of its own
// standing in for the forwarder's.
func openTestLog(t testing.TB, path string, max int, interval time.Duration) (*seqLog, *seqSet) {
	t.Helper()
	set := newBoundedMap[uint64, uint32](max)
	mu := new(sync.Mutex)
	mu.Lock()
	defer mu.Unlock()
	l, err := openSeqLog(path, set, mu, interval, quiet(), func(spool.ID) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	return l, set
}

// addLocking and closeLocking hold the log's lock, as the forwarder does.
func (l *seqLog) addLocking(ids ...spool.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.add(ids)
}

func (l *seqLog) closeLocking() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.close()
}

func (l *seqLog) state() (broken bool, rewrites int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.broken, l.rewrites
}

func setKeys(s *seqSet) []uint64 {
	var k []uint64
	for seq := range s.m {
		k = append(k, seq)
	}
	slices.Sort(k)
	return k
}

// "The last N such messages are kept": a rewrite writes the set oldest
// first, so that the next start, which evicts in file order, forgets the
// oldest, not any of the newest N.
func TestSeqLogKeepsTheNewestAcrossRewritesAndRestarts(t *testing.T) {
	const max = 4
	for round := range 20 {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("log%d", round))
		l, _ := openTestLog(t, path, max, 0)
		last := uint64(2*max + 1 + round) // rewrites at twice the bound, more each round
		for seq := uint64(1); seq <= last; seq++ {
			l.addLocking(spool.ID{Epoch: 1, Seq: seq})
		}
		if err := l.closeLocking(); err != nil {
			t.Fatal(err)
		}
		l2, set := openTestLog(t, path, max, 0)
		l2.closeLocking()
		want := []uint64{last - 3, last - 2, last - 1, last}
		if got := setKeys(set); !slices.Equal(got, want) {
			b, _ := os.ReadFile(path)
			t.Fatalf("round %d: kept %v after a restart, want the newest %v; file:\n%s", round, got, want, b)
		}
	}
}

// Only whole lines of a sequence and an epoch count: a line cut short (a
// crash or a short write) would otherwise name a sequence nobody added,
// and a line without an epoch (or epoch 0) would match a sequence reused
// after a machine crash.
func TestSeqLogIgnoresTornAndEpochlessLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, []byte("7\n0 3\n8 0\nx 3\n9 3 \n1000 3\n12"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, set := openTestLog(t, path, 4096, 0)
	l.closeLocking()
	if got := setKeys(set); !slices.Equal(got, []uint64{1000}) || !has(set, spool.ID{Seq: 1000, Epoch: 3}) || has(set, spool.ID{Seq: 1000, Epoch: 4}) {
		t.Fatalf("loaded %v", set.m)
	}
	if b, _ := os.ReadFile(path); string(b) != "1000 3\n" {
		t.Fatalf("rewritten at open as %q", b)
	}
}

// fsizeChild reruns test name in a child process (its file size limit is
// changed there, standing in for a full disk); it returns true in the
// child.
func fsizeChild(t *testing.T, name string) bool {
	if os.Getenv("SLUICE_TEST_FSIZE_CHILD") != "" {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "SLUICE_TEST_FSIZE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+name)) {
		t.Fatalf("child: %v\n%s", err, out)
	}
	return false
}

// limitFileSize makes writes past limit bytes fail (EFBIG), as a full disk
// does, until the returned func is called.
func limitFileSize(t *testing.T, limit uint64) (restore func()) {
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &orig); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: orig.Max}); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &orig); err != nil {
			t.Fatal(err)
		}
	}
}

// A short write leaves half a line in the log. Nothing is appended after
// it: the next start must find only what was added (not "1" + "1510 1" =
// 11510), and once space is back the log is rewritten whole.
func TestSeqLogShortWriteInventsNothing(t *testing.T) {
	if !fsizeChild(t, "TestSeqLogShortWriteInventsNothing") {
		return
	}
	for _, then := range []string{"more adds", "close"} {
		path := filepath.Join(t.TempDir(), "log")
		l, _ := openTestLog(t, path, 4096, 0)
		l.addLocking(spool.ID{Epoch: 1, Seq: 1499}) // "1499 1\n": 7 bytes
		restore := limitFileSize(t, 8)
		l.addLocking(spool.ID{Epoch: 1, Seq: 1500}) // writes "1" of "1500 1\n"
		restore()
		if broken, _ := l.state(); !broken {
			t.Fatalf("%s: a short write did not break the log", then)
		}
		if then == "more adds" {
			l.addLocking(spool.ID{Epoch: 1, Seq: 1510})
			waitFor(t, "the rewrite", func() bool { broken, _ := l.state(); return !broken })
		}
		l.closeLocking()
		l2, set := openTestLog(t, path, 4096, 0)
		l2.closeLocking()
		want := []uint64{1499, 1500}
		if then == "more adds" {
			want = append(want, 1510)
		}
		if got := setKeys(set); !slices.Equal(got, want) {
			b, _ := os.ReadFile(path)
			t.Fatalf("%s: after a restart the log holds %v, want %v; file %q", then, got, want, b)
		}
	}
}

// While the disk stays full, a broken log is rewritten at most once a
// second, not at every delivery (each rewrite writes the whole set under
// the forwarder's lock); once space is back, it mends itself.
func TestSeqLogRetriesAFailedRewriteAtMostOncePerSecond(t *testing.T) {
	if !fsizeChild(t, "TestSeqLogRetriesAFailedRewriteAtMostOncePerSecond") {
		return
	}
	path := filepath.Join(t.TempDir(), "log")
	l, set := openTestLog(t, path, 1024, time.Millisecond)
	defer l.closeLocking()
	seq := uint64(0)
	add := func() { seq++; l.addLocking(spool.ID{Epoch: 1, Seq: seq}) }
	for range 2*1024 - 2 {
		add()
	}
	waitFor(t, "the appends", func() bool { b, _ := os.ReadFile(path); return bytes.Count(b, []byte("\n")) == 2*1024-2 })
	restore := limitFileSize(t, 4096) // the log is larger: appends and rewrites fail
	add()
	waitFor(t, "the failed write", func() bool { broken, _ := l.state(); return broken })
	_, before := l.state()
	t0 := time.Now()
	for range 2000 {
		add()
	}
	_, after := l.state()
	if n, most := after-before, 1+int(time.Since(t0)/seqLogRetry); n > most {
		t.Fatalf("%d rewrites tried during %d adds in %v", n, 2000, time.Since(t0))
	}
	restore()
	waitFor(t, "the rewrite once space is back", func() bool { broken, _ := l.state(); return !broken })
	l.mu.Lock()
	want := setKeys(set)
	l.mu.Unlock()
	l2, set2 := openTestLog(t, path, 1024, 0)
	l2.closeLocking()
	if got := setKeys(set2); !slices.Equal(got, want) || len(got) != 1024 || got[len(got)-1] != seq {
		t.Fatalf("after the disk was full: file holds %d entries up to %v, want %d up to %d", len(got), got[len(got)-1:], len(want), seq)
	}
}

// Adds under the owner's lock race the timer's flush, rewrites at twice
// the bound, status reads and close; the file then holds nothing that was
// not added, and the last add before close. Run with -race.
func TestSeqLogConcurrentAddFlushRewriteClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l, set := openTestLog(t, path, 64, time.Millisecond)
	var wg sync.WaitGroup
	var next uint64
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3000 {
				l.mu.Lock()
				var ids []spool.ID
				for range 1 + i%5 {
					next++
					ids = append(ids, spool.ID{Epoch: 2, Seq: next})
				}
				l.add(ids)
				l.mu.Unlock()
				if i%100 == 0 {
					time.Sleep(time.Millisecond) // let timers fire
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // status reads
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			l.mu.Lock()
			has(set, spool.ID{Epoch: 2, Seq: next})
			l.mu.Unlock()
		}
	}()
	time.Sleep(70 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err := l.closeLocking(); err != nil {
		t.Fatal(err)
	}
	l.addLocking(spool.ID{Epoch: 2, Seq: next + 1}) // after close: not written, no panic
	l2, set2 := openTestLog(t, path, 64, 0)
	l2.closeLocking()
	for seq, ep := range set2.m {
		if ep != 2 || seq == 0 || seq > next {
			t.Errorf("reloaded an entry never added: %d %d", seq, ep)
		}
	}
	if _, ok := set2.get(next); !ok {
		t.Errorf("the last entry added before close (%d) is not in the file; kept %d entries", next, len(set2.m))
	}
}

// BenchmarkAheadLogAdd: one delivery ahead of the cursor at a time, as a
// sink with several topics makes them; the 50 ms timer batches the
// appends and every aheadMax deliveries the file is rewritten.
func BenchmarkAheadLogAdd(b *testing.B) {
	l, _ := openTestLog(b, filepath.Join(b.TempDir(), AheadFilePrefix+"s"), aheadMax, aheadLogInterval)
	defer l.closeLocking()
	b.ReportAllocs()
	for i := range b.N {
		l.addLocking(spool.ID{Epoch: 1, Seq: uint64(i + 1)})
	}
}
