package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/sinktest"
)

func newWriter(t *testing.T, opts Options) *Writer {
	t.Helper()
	w, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return w
}

func mustWrite(t *testing.T, w *Writer, msgs []sink.Message) {
	t.Helper()
	if err := w.Write(context.Background(), msgs); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

// expectDir checks that dir holds exactly want, in order.
func expectDir(t *testing.T, dir string, want []sink.Message) {
	t.Helper()
	recs, err := ReadDir(dir)
	if err != nil {
		t.Fatalf("ReadDir: %v", err)
	}
	got := make([]sink.Message, len(recs))
	for i, r := range recs {
		got[i] = r.Message()
	}
	caps := sinktest.Caps{EmptyKey: true, Partition: true, TimePrecision: time.Nanosecond}
	if err := sinktest.Diff(caps, want, got); err != nil {
		t.Fatal(err)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	files, err := listFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ns []string
	for _, f := range files {
		ns = append(ns, f.name)
	}
	return ns
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// clock is a settable Now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestNewNeedsDir(t *testing.T) {
	if _, err := New(Options{}); !errors.Is(err, ErrNoDir) {
		t.Fatalf("New without Dir: %v, want ErrNoDir", err)
	}
}

func TestWriteIsReadableAtOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b") // created by New
	c := &clock{time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	w := newWriter(t, Options{Dir: dir, Now: c.now})
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("New did not create the directory: %v", err)
	}
	msgs := sinktest.Generate("m", 20, 100)
	mustWrite(t, w, msgs)
	// No Close: what Write acknowledged is in the file already.
	expectDir(t, dir, msgs)
	if got, want := names(t, dir), []string{"sluice-20260304T050607Z-000001.ndjson"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("files %v, want %v", got, want)
	}
}

func TestRotateBySize(t *testing.T) {
	dir := t.TempDir()
	one := sinktest.Generate("x", 1, 100)
	lineLen := int64(len(AppendBatch(nil, one)))
	limit := 3*lineLen + lineLen/2 // three lines fit, the fourth does not
	w := newWriter(t, Options{Dir: dir, RotateBytes: limit})

	var want []sink.Message
	for i := range 7 {
		m := sinktest.Generate(fmt.Sprintf("s%d-", i), 1, 100)
		mustWrite(t, w, m)
		want = append(want, m...)
	}
	big := sinktest.Generate("big-", 5, 100) // larger than the limit: a file of its own
	mustWrite(t, w, big)
	want = append(want, big...)
	after := sinktest.Generate("after-", 1, 100)
	mustWrite(t, w, after)
	want = append(want, after...)

	ns := names(t, dir)
	if len(ns) != 5 { // 3 + 3 + 1 lines, the big batch, the last line
		t.Fatalf("files %v, want 5", ns)
	}
	for i, n := range ns {
		size := fileSize(t, filepath.Join(dir, n))
		if i != 3 && size > limit {
			t.Errorf("%s: %d bytes, limit %d", n, size, limit)
		}
	}
	if size := fileSize(t, filepath.Join(dir, ns[3])); size != int64(len(AppendBatch(nil, big))) {
		t.Errorf("the big batch was split: %s has %d bytes", ns[3], size)
	}
	expectDir(t, dir, want)
}

func TestRotateByAge(t *testing.T) {
	dir := t.TempDir()
	c := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	w := newWriter(t, Options{Dir: dir, RotateAge: time.Minute, Now: c.now})
	var want []sink.Message
	step := func(d time.Duration) {
		c.advance(d)
		m := sinktest.Generate(fmt.Sprintf("t%d-", len(want)), 2, 50)
		mustWrite(t, w, m)
		want = append(want, m...)
	}
	step(0)
	step(30 * time.Second) // same file
	step(29 * time.Second) // 59 s: same file
	step(time.Second)      // 60 s: new file
	step(10 * time.Minute) // idle for long: new file at the next batch
	got := names(t, dir)
	wantNames := []string{
		"sluice-20260101T000000Z-000001.ndjson",
		"sluice-20260101T000100Z-000002.ndjson",
		"sluice-20260101T001100Z-000003.ndjson",
	}
	if strings.Join(got, ",") != strings.Join(wantNames, ",") {
		t.Fatalf("files %v, want %v", got, wantNames)
	}
	expectDir(t, dir, want)
}

func TestRestartStartsNewFile(t *testing.T) {
	dir := t.TempDir()
	c := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	w1 := newWriter(t, Options{Dir: dir, Now: c.now})
	a := sinktest.Generate("a", 3, 50)
	mustWrite(t, w1, a)
	if err := w1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := filepath.Join(dir, names(t, dir)[0])
	before, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}

	// Same second, even an earlier clock: a new name, the old file untouched.
	c.advance(-time.Hour)
	w2 := newWriter(t, Options{Dir: dir, Now: c.now})
	b := sinktest.Generate("b", 3, 50)
	mustWrite(t, w2, b)
	after, err := os.ReadFile(first)
	if err != nil || string(after) != string(before) {
		t.Fatalf("finished file changed (%v)", err)
	}
	ns := names(t, dir)
	if len(ns) != 2 || !strings.HasSuffix(ns[1], "-000002.ndjson") {
		t.Fatalf("files %v", ns)
	}
	expectDir(t, dir, append(a, b...))
}

func TestTornTailCutAtStart(t *testing.T) {
	dir := t.TempDir()
	good := sinktest.Generate("good", 2, 50)
	content := AppendBatch(nil, good)
	torn := AppendBatch(nil, sinktest.Generate("torn", 1, 50))
	old := filepath.Join(dir, "sluice-20260101T000000Z-000007.ndjson")
	if err := os.WriteFile(old, append(content, torn[:len(torn)/2]...), 0o644); err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, Options{Dir: dir})
	if size := fileSize(t, old); size != int64(len(content)) {
		t.Fatalf("torn tail not cut: %d bytes, want %d", size, len(content))
	}
	next := sinktest.Generate("next", 2, 50)
	mustWrite(t, w, next)
	ns := names(t, dir)
	if len(ns) != 2 || !strings.HasSuffix(ns[1], "-000008.ndjson") {
		t.Fatalf("files %v, want a new file with seq 8", ns)
	}
	expectDir(t, dir, append(good, next...))
}

func TestPathIsRegularFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(dir, []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, Options{Dir: dir})
	msgs := sinktest.Generate("m", 5, 100)
	for range 2 {
		err := w.Write(context.Background(), msgs)
		checkTransientIO(t, err)
	}

	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, w, msgs) // the forwarder's retry
	more := sinktest.Generate("more", 2, 100)
	mustWrite(t, w, more)
	expectDir(t, dir, append(msgs, more...))
}

func TestDirectoryReplacedWhileOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	w := newWriter(t, Options{Dir: dir})
	mustWrite(t, w, sinktest.Generate("a", 2, 50))

	// An operator removes the directory and something puts a file there:
	// the open file is unlinked, and writing on into it would lose data.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b := sinktest.Generate("b", 2, 50)
	checkTransientIO(t, w.Write(context.Background(), b))

	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, w, b)
	expectDir(t, dir, b)
}

func TestCurrentFileDeleted(t *testing.T) {
	dir := t.TempDir()
	w := newWriter(t, Options{Dir: dir})
	mustWrite(t, w, sinktest.Generate("a", 2, 50))
	if err := os.Remove(filepath.Join(dir, names(t, dir)[0])); err != nil {
		t.Fatal(err)
	}
	b := sinktest.Generate("b", 2, 50)
	mustWrite(t, w, b)
	expectDir(t, dir, b)
}

func checkTransientIO(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("Write succeeded, want an error")
	}
	if sink.IsPermanent(err) {
		t.Fatalf("error %v is permanent, want transient", err)
	}
	if r := sink.Reason(err); r != "io" {
		t.Fatalf("reason %q, want io (error %v)", r, err)
	}
}

// TestDiskFull fills a real 1 MiB tmpfs: the write fails part-way with
// ENOSPC, and once space is back the retried batch is in the file exactly
// once, with no remains of the failed attempt.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to mount a 1 MiB tmpfs for a real ENOSPC")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("skipped: mount tmpfs: %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	dir := filepath.Join(mnt, "out")
	w := newWriter(t, Options{Dir: dir, RotateBytes: -1})
	a := sinktest.Generate("a", 10, 100)
	mustWrite(t, w, a)
	current := filepath.Join(dir, names(t, dir)[0])
	goodSize := fileSize(t, current)

	// Fill the filesystem, then free 8 KiB so that the next batch (about
	// 100 KiB) is written in part before ENOSPC.
	filler := filepath.Join(mnt, "filler")
	fillDisk(t, filler)
	if err := os.Truncate(filler, fileSize(t, filler)-8<<10); err != nil {
		t.Fatal(err)
	}
	b := sinktest.Generate("b", 100, 1000)
	for attempt := range 2 {
		err := w.Write(context.Background(), b)
		checkTransientIO(t, err)
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("attempt %d: %v, want ENOSPC", attempt, err)
		}
		if size := fileSize(t, current); size <= goodSize {
			t.Logf("attempt %d: nothing of the batch reached the file", attempt)
		} else {
			t.Logf("attempt %d: %d bytes of the failed batch are in the file", attempt, size-goodSize)
		}
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, w, b)
	if n := len(names(t, dir)); n != 1 {
		t.Fatalf("%d files, want the retry in the same file", n)
	}
	if size, want := fileSize(t, current), goodSize+int64(len(AppendBatch(nil, b))); size != want {
		t.Fatalf("file has %d bytes, want %d", size, want)
	}
	expectDir(t, dir, append(a, b...))
}

func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			return
		}
	}
}

func TestCloseWaitsBoundedForWrite(t *testing.T) {
	dir := t.TempDir()
	w := newWriter(t, Options{Dir: dir})
	mustWrite(t, w, sinktest.Generate("a", 1, 10))

	// Hold the lock as a Write stuck in a slow fsync would.
	w.sem <- struct{}{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close while a Write runs, ctx done: %v, want context.Canceled", err)
	}
	if w.f == nil {
		t.Fatal("file closed under a running Write")
	}
	w.unlock() // the Write returns and, seeing Close, closes the file
	if w.f != nil {
		t.Fatal("file still open after the running Write returned")
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := w.Write(context.Background(), sinktest.Generate("b", 1, 10)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v, want ErrClosed", err)
	}
}

func TestParseName(t *testing.T) {
	for name, want := range map[string]uint64{
		"sluice-20260101T000000Z-000001.ndjson":  1,
		"sluice-20260101T000000Z-1234567.ndjson": 1234567,
	} {
		if seq, ok := parseName(name); !ok || seq != want {
			t.Errorf("parseName(%q) = %d, %v", name, seq, ok)
		}
	}
	for _, name := range []string{
		"sluice-20260101T000000Z-000001.ndjson.tmp",
		"other-20260101T000000Z-000001.ndjson",
		"sluice-2026-000001.ndjson",
		"sluice-20260101T000000Z-x.ndjson",
		"sluice-20260101T000000Z.ndjson",
	} {
		if _, ok := parseName(name); ok {
			t.Errorf("parseName(%q) accepted", name)
		}
	}
}

// BenchmarkWrite writes batches of 1000 messages of 1 KiB, each fsynced.
// On tmpfs fsync is free and the number means little: set TMPDIR to a
// directory on a real disk.
func BenchmarkWrite(b *testing.B) {
	dir := b.TempDir()
	b.Logf("filesystem of %s: %s", dir, fsType(dir))
	w, err := New(Options{Dir: dir, RotateBytes: 256 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close(context.Background())
	msgs := sinktest.Generate("bench-", 1000, 1024)
	var payload int64
	for _, m := range msgs {
		payload += int64(len(m.Value))
	}
	b.SetBytes(payload)
	b.ReportAllocs()
	ctx := context.Background()
	for b.Loop() {
		if err := w.Write(ctx, msgs); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCloseWithDoneContextStillCloses(t *testing.T) {
	w := newWriter(t, Options{Dir: t.TempDir()})
	mustWrite(t, w, sinktest.Generate("a", 1, 10))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close with nothing running: %v", err)
	}
	if w.f != nil {
		t.Fatal("file left open")
	}
}
