package spool

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestKill9 kills a real child process with SIGKILL while it appends with
// sync=always, several times, and checks that every record the child saw
// acknowledged is present and intact. This proves durability across process
// crashes; it cannot prove it across power loss (the page cache survives a
// SIGKILL).
func TestKill9(t *testing.T) {
	if dir := os.Getenv("SLUICE_SPOOL_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	dir := t.TempDir()
	acked := map[uint64]string{} // seq -> "epoch payload"
	for cycle := 0; cycle < 4; cycle++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$", "-test.v=false")
		cmd.Env = append(os.Environ(), "SLUICE_SPOOL_CRASH_CHILD="+dir, "SLUICE_CRASH_CYCLE="+strconv.Itoa(cycle))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		killAfter := 300 + rand.IntN(700)
		n := 0
		for sc.Scan() {
			f := strings.SplitN(sc.Text(), " ", 3)
			if len(f) != 3 || f[0] == "" {
				continue
			}
			seq, _ := strconv.ParseUint(f[1], 10, 64)
			acked[seq] = f[0] + " " + f[2] // a reused seq (none expected: sync=always) overwrites
			if n++; n == killAfter {
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		cmd.Wait()
		if n < killAfter {
			t.Fatalf("cycle %d: child stopped after %d acks", cycle, n)
		}
	}
	s := openT(t, dir, Options{})
	c, _ := s.Cursor("verify", CursorOptions{FromOldest: true})
	got := map[uint64]string{}
	for uint64(len(got)) < s.LastSeq() {
		recs, err := c.Read(context.Background(), 1000, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Corrupt {
				t.Fatalf("record %d corrupt", r.ID.Seq)
			}
			got[r.ID.Seq] = fmt.Sprintf("%d %s", r.ID.Epoch, r.Data)
		}
	}
	for seq, want := range acked {
		if got[seq] != want {
			t.Fatalf("acked record %d: want %q, got %q", seq, want, got[seq])
		}
	}
	t.Logf("%d acknowledged records over 4 kill -9 cycles, all present; %d records on disk", len(acked), len(got))
}

func crashChild(dir string) {
	s, err := Open(dir, Options{Logger: quiet()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	cycle := os.Getenv("SLUICE_CRASH_CYCLE")
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				p := []byte(fmt.Sprintf("c%s-g%d-%d-%s", cycle, g, i, bytes.Repeat([]byte("p"), i%300)))
				id, err := s.Append(context.Background(), p)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(w, "%d %d %s\n", id.Epoch, id.Seq, p)
				w.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	time.Sleep(time.Hour)
}
