package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openT(t *testing.T, dir string, o Options) *Spool {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet()
	}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// noTruncation, as Options.TruncateSegments, keeps every segment on disk.
// For tests that damage or inspect segments of a spool without cursors:
// with none, every record below the tail may go at any flush (every 50 ms),
// and on a loaded machine one came between a test's appends and its damage
// and removed the segment it meant to damage.
const noTruncation = 1 << 30

func payload(i int) []byte {
	return []byte(fmt.Sprintf("record-%06d-%s", i, bytes.Repeat([]byte{'x'}, i%50)))
}

func appendN(t *testing.T, s *Spool, from, n int) []ID {
	t.Helper()
	ids := make([]ID, 0, n)
	for i := from; i < from+n; i++ {
		id, err := s.Append(context.Background(), payload(i))
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		ids = append(ids, id)
	}
	return ids
}

// readAll reads everything currently durable through c without acking.
func readAll(t *testing.T, c *Cursor, want int) []Record {
	t.Helper()
	var out []Record
	for len(out) < want {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		recs, err := c.Read(ctx, 1000, 1<<20)
		cancel()
		if err != nil {
			t.Fatalf("read after %d of %d records: %v", len(out), want, err)
		}
		out = append(out, recs...)
	}
	return out
}

// readNone asserts that nothing is readable now.
func readNone(t *testing.T, c *Cursor) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	recs, err := c.Read(ctx, 10, 1<<20)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("expected nothing to read, got %d records, err %v", len(recs), err)
	}
}

func TestAppendReadAckReopen(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	c, err := s.Cursor("a", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ids := appendN(t, s, 0, 100)
	for i, id := range ids {
		if id.Seq != uint64(i+1) || id.Epoch != 1 {
			t.Fatalf("id %d = %+v", i, id)
		}
	}
	recs := readAll(t, c, 100)
	for i, r := range recs {
		if !bytes.Equal(r.Data, payload(i)) || r.ID != ids[i] || r.Corrupt {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	readNone(t, c)
	if err := c.Ack(60); err != nil {
		t.Fatal(err)
	}
	if b := c.Backlog(); b.Records != 40 || b.Bytes <= 0 || b.Oldest.IsZero() {
		t.Fatalf("backlog %+v", b)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openT(t, dir, Options{})
	if s.Epoch() != 2 {
		t.Fatalf("epoch %d", s.Epoch())
	}
	c, err = s.Cursor("a", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	recs = readAll(t, c, 40)
	if recs[0].ID.Seq != 61 || !bytes.Equal(recs[39].Data, payload(99)) {
		t.Fatalf("after reopen: first %d", recs[0].ID.Seq)
	}
	id, err := s.Append(context.Background(), []byte("new"))
	if err != nil || id != (ID{Epoch: 2, Seq: 101}) {
		t.Fatalf("append after reopen: %+v %v", id, err)
	}
}

func TestSecondOpenIsLocked(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir, Options{})
	_, err := Open(dir, Options{Logger: quiet()})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
}

func TestNewCursorStartsAtTailUnlessOldest(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	appendN(t, s, 0, 10)
	tail, _ := s.Cursor("tail", CursorOptions{})
	old, _ := s.Cursor("old", CursorOptions{FromOldest: true})
	readNone(t, tail)
	if recs := readAll(t, old, 10); recs[0].ID.Seq != 1 {
		t.Fatalf("oldest cursor starts at %d", recs[0].ID.Seq)
	}
	appendN(t, s, 10, 1)
	if recs := readAll(t, tail, 1); recs[0].ID.Seq != 11 {
		t.Fatalf("tail cursor read %d", recs[0].ID.Seq)
	}
	if _, err := s.Cursor("tail", CursorOptions{}); !errors.Is(err, ErrCursorOpen) {
		t.Fatalf("double open: %v", err)
	}
}

func TestRolloverMatchesSegmentFiles(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 1024})
	c, _ := s.Cursor("a", CursorOptions{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if _, err := s.Append(context.Background(), payload(g*1000+i), payload(i)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	recs := readAll(t, c, 800)
	for i, r := range recs {
		if r.ID.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.ID.Seq)
		}
	}
	w, err := listWAL(filepath.Join(dir, "wal"))
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	segs := append([]segment(nil), s.segs...)
	s.mu.Unlock()
	if len(segs) < 10 || len(w.segs) != len(segs) {
		t.Fatalf("spool knows %d segments, disk has %d", len(segs), len(w.segs))
	}
	for i := range segs {
		size := w.segs[i].size
		if i == len(segs)-1 && size > segs[i].size {
			size = segs[i].size // the open tail is zero-filled past its records
		}
		if w.segs[i].first != segs[i].first || size != segs[i].size {
			t.Fatalf("segment %d: disk %+v, spool %+v", i, w.segs[i], segs[i])
		}
	}
}

func TestTornTailEveryOffset(t *testing.T) {
	src := t.TempDir()
	s := openT(t, src, Options{})
	appendN(t, s, 0, 5)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(src, "wal", segmentName(1))
	full, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	lastLen := frameSize(len(payload(4)))
	start := len(full) - lastLen
	for cut := start; cut < len(full); cut++ {
		dir := t.TempDir()
		copyDir(t, src, dir)
		if err := os.WriteFile(filepath.Join(dir, "wal", segmentName(1)), full[:cut], 0o640); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, Options{Logger: quiet()})
		if err != nil {
			t.Fatalf("cut at %d: open: %v", cut, err)
		}
		rec := s.Recovery()
		if cut > start && rec.TailCutBytes != int64(cut-start) {
			t.Fatalf("cut at %d: reported %d bytes cut", cut, rec.TailCutBytes)
		}
		c, _ := s.Cursor("r", CursorOptions{FromOldest: true})
		recs := readAll(t, c, 4)
		if len(recs) != 4 || s.LastSeq() != 4 {
			t.Fatalf("cut at %d: %d records, last %d", cut, len(recs), s.LastSeq())
		}
		for i, r := range recs {
			if !bytes.Equal(r.Data, payload(i)) {
				t.Fatalf("cut at %d: record %d differs", cut, i)
			}
		}
		readNone(t, c)
		id, err := s.Append(context.Background(), []byte("after"))
		if err != nil || id.Seq != 5 || id.Epoch != 2 {
			t.Fatalf("cut at %d: append %+v %v", cut, id, err)
		}
		s.Close()
	}
}

// copyDir copies src to dst as a process crash would leave it (the page
// cache is what the next Open reads), leaving out the paths in skip.
func copyDir(t *testing.T, src, dst string, skip ...string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if slices.Contains(skip, p) {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(src, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o750)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o640)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestZeroFilledAndGarbageTail(t *testing.T) {
	for name, junk := range map[string][]byte{
		"zeros":   make([]byte, 4096),
		"garbage": []byte("\x05hello this is not a frame \xff\xff\xff\xff\x0f"),
		"big-len": {0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{})
			ids := appendN(t, s, 0, 20)
			s.Close()
			seg := filepath.Join(dir, "wal", segmentName(1))
			f, _ := os.OpenFile(seg, os.O_APPEND|os.O_WRONLY, 0)
			f.Write(junk)
			f.Close()
			s = openT(t, dir, Options{})
			// (Zeros of a size no zero-fill gives are a torn tail too:
			// zerofill_test.go.)
			if got := s.Recovery().TailCutBytes; got != int64(len(junk)) {
				t.Fatalf("cut %d bytes, want %d", got, len(junk))
			}
			c, _ := s.Cursor("r", CursorOptions{FromOldest: true})
			recs := readAll(t, c, 20)
			if recs[19].ID != ids[19] {
				t.Fatalf("last record %+v", recs[19].ID)
			}
			readNone(t, c)
			id, err := s.Append(context.Background(), []byte("x"))
			if err != nil || id.Seq != 21 {
				t.Fatalf("append: %+v %v", id, err)
			}
			if r := readAll(t, c, 1); string(r[0].Data) != "x" {
				t.Fatalf("read %q", r[0].Data)
			}
		})
	}
}

// closedSegments appends until the spool has at least n segments.
func fillSegments(t *testing.T, s *Spool, n int) int {
	t.Helper()
	i := 0
	for s.Stats().Segments < n {
		appendN(t, s, i, 1)
		i++
	}
	return i
}

func TestFlippedPayloadByteIsSurfacedAsCorrupt(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 2048})
	// A cursor holds the records: without one, background truncation may
	// remove the first segment before the test damages it.
	s.Cursor("hold", CursorOptions{})
	n := fillSegments(t, s, 3)
	s.Close()
	seg := filepath.Join(dir, "wal", segmentName(1))
	data, _ := os.ReadFile(seg)
	// Second record's payload, first byte.
	_, n1, _ := nextFrame(data)
	_, n2, _ := nextFrame(data[n1:])
	data[n1+n2-1] ^= 0x40
	os.WriteFile(seg, data, 0o640)

	s = openT(t, dir, Options{SegmentBytes: 2048})
	c, _ := s.Cursor("r", CursorOptions{FromOldest: true})
	recs := readAll(t, c, n)
	for i, r := range recs {
		if r.Corrupt != (i == 1) {
			t.Fatalf("record %d corrupt=%v", i, r.Corrupt)
		}
		if i != 1 && !bytes.Equal(r.Data, payload(i)) {
			t.Fatalf("record %d differs", i)
		}
	}
}

func TestFlippedLengthPrefixInClosedSegmentQuarantines(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 2048})
	// A cursor holds the records: without one, background truncation may
	// remove the first segment before the test damages it.
	s.Cursor("hold", CursorOptions{})
	n := fillSegments(t, s, 3)
	s.Close()
	seg := filepath.Join(dir, "wal", segmentName(1))
	data, _ := os.ReadFile(seg)
	segLen := len(data)
	var perSeg int
	for off := 0; off < len(data); perSeg++ {
		_, fn, _ := nextFrame(data[off:])
		off += fn
	}
	_, n1, _ := nextFrame(data)
	_, n2, _ := nextFrame(data[n1:])
	data[n1+n2] ^= 0x08 // length prefix of the third record
	os.WriteFile(seg, data, 0o640)

	s = openT(t, dir, Options{SegmentBytes: 2048})
	rec := s.Recovery()
	if len(rec.Quarantined) != 1 {
		t.Fatalf("recovery %+v", rec)
	}
	q := rec.Quarantined[0]
	if q.Offset != int64(n1+n2) || q.Bytes != int64(segLen-n1-n2) || q.LostRecords != uint64(perSeg-2) {
		t.Fatalf("quarantine %+v (segment had %d records)", q, perSeg)
	}
	if b, err := os.ReadFile(q.File); err != nil || len(b) != int(q.Bytes) {
		t.Fatalf("quarantine file: %d bytes, %v", len(b), err)
	}
	c, _ := s.Cursor("r", CursorOptions{FromOldest: true})
	recs := readAll(t, c, n-perSeg+2)
	if recs[0].ID.Seq != 1 || recs[1].ID.Seq != 2 || recs[2].ID.Seq != uint64(perSeg+1) {
		t.Fatalf("records after quarantine: %d %d %d", recs[0].ID.Seq, recs[1].ID.Seq, recs[2].ID.Seq)
	}
	for _, r := range recs {
		if !bytes.Equal(r.Data, payload(int(r.ID.Seq-1))) {
			t.Fatalf("record %d differs", r.ID.Seq)
		}
	}
	readNone(t, c)
}

func TestCursorFileMissingOrTornRestartsAtOldest(t *testing.T) {
	for _, damage := range []string{"missing", "torn"} {
		t.Run(damage, func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{})
			c, _ := s.Cursor("a", CursorOptions{})
			appendN(t, s, 0, 10)
			readAll(t, c, 10)
			c.Ack(10)
			s.Close()
			p := filepath.Join(dir, "cursors", "a.cursor")
			if damage == "missing" {
				os.Remove(p)
			} else {
				b, _ := os.ReadFile(p)
				os.WriteFile(p, b[:len(b)-3], 0o640)
			}
			s = openT(t, dir, Options{})
			info := s.Cursors()
			if len(info) != 1 || !info[0].Reset || info[0].Acked != 0 {
				t.Fatalf("cursors %+v", info)
			}
			c, _ = s.Cursor("a", CursorOptions{})
			if recs := readAll(t, c, 10); recs[0].ID.Seq != 1 {
				t.Fatalf("restarted at %d", recs[0].ID.Seq)
			}
		})
	}
}

func TestOrphanCursorIsKeptUntilRemoved(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 1024, TruncateSegments: 1})
	s.Cursor("gone", CursorOptions{})
	live, _ := s.Cursor("live", CursorOptions{})
	n := fillSegments(t, s, 5)
	readAll(t, live, n)
	live.Ack(uint64(n))
	s.Close()

	s = openT(t, dir, Options{SegmentBytes: 1024, TruncateSegments: 1})
	if _, err := s.Cursor("live", CursorOptions{}); err != nil {
		t.Fatal(err)
	}
	infos := s.Cursors()
	if len(infos) != 2 || infos[0].Name != "gone" || infos[0].InUse || !infos[1].InUse {
		t.Fatalf("cursors %+v", infos)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s.Flush()
	if st := s.Stats(); st.FirstSeq != 1 || st.Truncations != 0 {
		t.Fatalf("orphan did not hold records: %+v", st)
	}
	if err := s.RemoveCursor("live"); !errors.Is(err, ErrCursorOpen) {
		t.Fatalf("remove open cursor: %v", err)
	}
	if err := s.RemoveCursor("gone"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { s.Flush(); return s.Stats().Truncations > 0 })
	if st := s.Stats(); st.FirstSeq == 1 {
		t.Fatalf("nothing truncated after removing the orphan: %+v", st)
	}
	s.Close()
	s = openT(t, dir, Options{SegmentBytes: 1024})
	if infos := s.Cursors(); len(infos) != 1 || infos[0].Name != "live" {
		t.Fatalf("after reopen %+v", infos)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	waitForState(t, cond, nil)
}

// waitForState is waitFor that prints state() when the condition is not
// reached (a liveness bound, not a timing claim).
func waitForState(t *testing.T, cond func() bool, state func() any) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			if state != nil {
				t.Fatalf("condition not reached: %+v", state())
			}
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readSegments opens a spool of 1 KiB segments truncated in batches of
// three, fills eight segments and reads every record through cursor "a".
func readSegments(t *testing.T) (string, *Spool, *Cursor, []Record) {
	t.Helper()
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 1024, TruncateSegments: 3})
	c, _ := s.Cursor("a", CursorOptions{})
	return dir, s, c, readAll(t, c, fillSegments(t, s, 8))
}

func TestBatchedTruncation(t *testing.T) {
	dir, s, c, recs := readSegments(t)
	n := len(recs)
	// Passing two segments is not enough.
	s.mu.Lock()
	twoSegs := s.segs[1].last
	s.mu.Unlock()
	c.Ack(twoSegs)
	s.Flush()
	s.Flush()
	if st := s.Stats(); st.Truncations != 0 {
		t.Fatalf("truncated after two segments: %+v", st)
	}
	c.Ack(recs[len(recs)-1].ID.Seq)
	waitForState(t, func() bool { s.Flush(); return s.Stats().Truncations >= 1 },
		func() any { return s.Stats() })
	st := s.Stats()
	if st.Segments != 2 || st.Truncations != 1 {
		t.Fatalf("after truncation (want one truncation leaving 2 segments): %+v", st)
	}
	// The rewrite kept one record of the last passed segment, not a
	// segment: the first file holds exactly that record, and the logical
	// positions still join up.
	s.mu.Lock()
	first, tail := s.segs[0], s.segs[1]
	s.mu.Unlock()
	fi, err := os.Stat(first.path)
	if err != nil {
		t.Fatal(err)
	}
	if first.first != first.last || first.last != tail.first-1 || fi.Size() != first.size ||
		first.size != int64(frameSize(len(payload(int(first.first-1))))) || first.base+first.size != tail.base {
		t.Fatalf("first segment after truncation: %+v, file %d bytes; tail %+v", first, fi.Size(), tail)
	}
	if rep, err := Verify(dir); err != nil || !rep.Recovery.Clean() {
		t.Fatalf("verify after truncation: %v %+v", err, rep.Recovery)
	}
	// The data a reader needs is intact, and a reopen agrees.
	appendN(t, s, n, 3)
	if r := readAll(t, c, 3); !bytes.Equal(r[2].Data, payload(n+2)) {
		t.Fatal("read after truncation")
	}
	s.Close()
	s = openT(t, dir, Options{SegmentBytes: 1024})
	if s.Stats().FirstSeq != st.FirstSeq || s.LastSeq() != uint64(n+3) {
		t.Fatalf("reopen: %+v", s.Stats())
	}
}

func TestFullReject(t *testing.T) {
	s := openT(t, t.TempDir(), Options{MaxBytes: 4096})
	c, _ := s.Cursor("a", CursorOptions{})
	var ok int
	for i := 0; ; i++ {
		_, err := s.Append(context.Background(), make([]byte, 100))
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ok++
	}
	if ok != 4096/frameSize(100) {
		t.Fatalf("accepted %d records", ok)
	}
	recs := readAll(t, c, ok)
	c.Ack(recs[9].ID.Seq)
	if _, err := s.Append(context.Background(), make([]byte, 100)); err != nil {
		t.Fatalf("after ack: %v", err)
	}
	if st := s.Stats(); st.RejectedFull != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFullDropOldest(t *testing.T) {
	s := openT(t, t.TempDir(), Options{MaxBytes: 4096, FullPolicy: DropOldest})
	slow, _ := s.Cursor("slow", CursorOptions{})
	fast, _ := s.Cursor("fast", CursorOptions{})
	per := 4096 / frameSize(100)
	for i := 0; i < 3*per; i++ {
		if _, err := s.Append(context.Background(), make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
		recs := readAll(t, fast, 1)
		fast.Ack(recs[0].ID.Seq)
	}
	infos := s.Cursors()
	if infos[1].Name != "slow" || infos[1].Dropped != uint64(2*per) || infos[0].Dropped != 0 {
		t.Fatalf("cursors %+v", infos)
	}
	recs := readAll(t, slow, per)
	if recs[0].ID.Seq != uint64(2*per+1) || !slow.Dropped(1) || slow.Dropped(uint64(2*per+1)) {
		t.Fatalf("slow reads from %d", recs[0].ID.Seq)
	}
	if b := slow.Backlog(); b.Bytes > 4096 {
		t.Fatalf("backlog %+v", b)
	}
}

func TestTrimBacklogPerCursor(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	a, _ := s.Cursor("a", CursorOptions{})
	b, _ := s.Cursor("b", CursorOptions{})
	appendN(t, s, 0, 100)
	n, err := a.TrimBacklog(int64(10 * frameSize(len(payload(99)))))
	if err != nil || n < 80 || n > 95 {
		t.Fatalf("trimmed %d: %v", n, err)
	}
	if recs := readAll(t, a, 100-int(n)); recs[0].ID.Seq != n+1 {
		t.Fatalf("a reads from %d", recs[0].ID.Seq)
	}
	if bl := b.Backlog(); bl.Records != 100 {
		t.Fatalf("b touched: %+v", bl)
	}
}

func TestConcurrentAppendersAndReader(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentBytes: 16 << 10, TruncateSegments: 1, CursorSyncInterval: time.Millisecond})
	c, _ := s.Cursor("a", CursorOptions{})
	const writers, each = 16, 200
	got := make(chan []Record, 1)
	go func() {
		var all []Record
		for len(all) < writers*each*2 {
			recs, err := c.Read(context.Background(), 100, 64<<10)
			if err != nil {
				t.Error(err)
				break
			}
			for _, r := range recs {
				all = append(all, Record{ID: r.ID, Data: append([]byte(nil), r.Data...)})
			}
			c.Ack(recs[len(recs)-1].ID.Seq)
		}
		got <- all
	}()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				ctx, cancel := context.WithCancel(context.Background())
				if i%50 == 49 {
					cancel() // a caller that gives up never corrupts a batch
				}
				id, err := s.Append(ctx, []byte(fmt.Sprintf("w%d-%d-a", w, i)), []byte(fmt.Sprintf("w%d-%d-b", w, i)))
				cancel()
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Error(err)
				}
				_ = id
			}
		}()
	}
	wg.Wait()
	// Cancelled appends may or may not have landed; fill up to the count.
	for s.LastSeq() < writers*each*2 {
		s.Append(context.Background(), []byte("pad"))
	}
	all := <-got
	seen := map[uint64]bool{}
	for i, r := range all {
		if r.ID.Seq != uint64(i+1) || seen[r.ID.Seq] {
			t.Fatalf("record %d has seq %d", i, r.ID.Seq)
		}
		seen[r.ID.Seq] = true
	}
	if st := s.Stats(); st.Corruptions != 0 || st.MeanCommitSize < 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestIDsUniqueAcrossReopenAfterCutTail(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	first := appendN(t, s, 0, 10)
	s.Close()
	seg := filepath.Join(dir, "wal", segmentName(1))
	b, _ := os.ReadFile(seg)
	lost := frameSize(len(payload(7))) + frameSize(len(payload(8))) + frameSize(len(payload(9)))
	os.WriteFile(seg, b[:len(b)-lost], 0o640) // a machine crash lost the unsynced tail
	s = openT(t, dir, Options{})
	again := appendN(t, s, 100, 3)
	seen := map[ID]bool{}
	for _, id := range first {
		seen[id] = true
	}
	for _, id := range again {
		if seen[id] {
			t.Fatalf("id %+v reused", id)
		}
	}
	if again[0].Seq != first[7].Seq || again[0].Epoch == first[7].Epoch {
		t.Fatalf("expected sequence reuse with a new epoch: %+v vs %+v", again[0], first[7])
	}
}

func TestCursorBeyondCutTailMovesToTail(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	c, _ := s.Cursor("a", CursorOptions{})
	appendN(t, s, 0, 10)
	readAll(t, c, 10)
	c.Ack(10)
	s.Close()
	seg := filepath.Join(dir, "wal", segmentName(1))
	b, _ := os.ReadFile(seg)
	os.WriteFile(seg, b[:len(b)-frameSize(len(payload(8)))-frameSize(len(payload(9)))], 0o640)
	s = openT(t, dir, Options{})
	c, _ = s.Cursor("a", CursorOptions{})
	appendN(t, s, 50, 1)
	if r := readAll(t, c, 1); r[0].ID.Seq != 9 || !bytes.Equal(r[0].Data, payload(50)) {
		t.Fatalf("new record after cut not delivered: %+v", r[0].ID)
	}
}

func TestVerifyIsReadOnly(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 2048})
	c, _ := s.Cursor("a", CursorOptions{})
	n := fillSegments(t, s, 3)
	readAll(t, c, 5)
	c.Ack(5)
	s.Flush()
	// Torn tail written behind the live spool's back.
	s.mu.Lock()
	tail := s.segs[len(s.segs)-1].path
	s.mu.Unlock()
	f, _ := os.OpenFile(tail, os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{5, 0, 0}) // a length, then nothing: torn (zeros alone would be zero-filled room)
	f.Close()
	before := snapshot(t, dir)
	r, err := Inspect(dir, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Live || r.Recovery.TailCutBytes != 3 || len(r.Segments) != 3 || r.Segments[2].Last != uint64(n) {
		t.Fatalf("report %+v", r)
	}
	if len(r.Cursors) != 1 || r.Cursors[0].Acked != 5 || len(r.Records) != 3 || !bytes.Equal(r.Records[2].Data, payload(2)) {
		t.Fatalf("cursors %+v records %d", r.Cursors, len(r.Records))
	}
	if after := snapshot(t, dir); after != before {
		t.Fatalf("verify changed the directory:\n%s\n%s", before, after)
	}
}

func snapshot(t *testing.T, dir string) string {
	var b bytes.Buffer
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil {
			fmt.Fprintf(&b, "%s %d %v\n", p, info.Size(), info.ModTime().UnixNano())
		}
		return nil
	})
	return b.String()
}

func TestScanSince(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentBytes: 1024})
	// A cursor holds the records: with none, every segment but the tail is
	// truncated as soon as the flush loop runs (every 50 ms).
	if _, err := s.Cursor("c", CursorOptions{}); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 0, 30)
	mid := time.Now()
	time.Sleep(2 * time.Millisecond)
	appendN(t, s, 30, 30)
	var got []uint64
	if err := s.Scan(mid, func(r Record) bool { got = append(got, r.ID.Seq); return true }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 30 || got[0] != 31 || got[29] != 60 {
		t.Fatalf("scan since mid: %v", got)
	}
	n := 0
	s.Scan(time.Time{}, func(Record) bool { n++; return n < 5 })
	if n != 5 {
		t.Fatalf("scan did not stop: %d", n)
	}
}

func TestReleasedCursorRereadsUnacknowledged(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	c, _ := s.Cursor("a", CursorOptions{})
	appendN(t, s, 0, 10)
	readAll(t, c, 10)
	c.Ack(4)
	c.Release()
	c, err := s.Cursor("a", CursorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if recs := readAll(t, c, 6); recs[0].ID.Seq != 5 {
		t.Fatalf("after release the cursor reads from %d", recs[0].ID.Seq)
	}
}

// TestGetEveryRecordThroughSparseIndex: Get finds every record through the
// sparse offset index, built while appending and rebuilt at open.
func TestGetEveryRecordThroughSparseIndex(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 64 << 10}
	s := openT(t, dir, o)
	c, _ := s.Cursor("a", CursorOptions{})
	const n = 3000
	for i := 0; i < n; i += 10 {
		var batch [][]byte
		for j := i; j < i+10; j++ {
			batch = append(batch, payload(j))
		}
		if _, err := s.Append(context.Background(), batch...); err != nil {
			t.Fatal(err)
		}
	}
	check := func(s *Spool) {
		t.Helper()
		if st := s.Stats(); st.Segments < 3 {
			t.Fatalf("want several segments, got %d", st.Segments)
		}
		for seq := uint64(1); seq < s.FirstSeq(); seq++ {
			if _, err := s.Get(seq); !errors.Is(err, ErrNoRecord) {
				t.Fatalf("Get(%d) of a truncated record: %v", seq, err)
			}
		}
		for seq := s.FirstSeq(); seq <= n; seq++ {
			r, err := s.Get(seq)
			if err != nil || r.ID.Seq != seq || !bytes.Equal(r.Data, payload(int(seq-1))) {
				t.Fatalf("Get(%d): %+v %v", seq, r.ID, err)
			}
		}
		if _, err := s.Get(n + 1); !errors.Is(err, ErrNoRecord) {
			t.Fatalf("Get past the tail: %v", err)
		}
	}
	check(s)
	readAll(t, c, 1777)
	c.Ack(1777)
	s.Close()
	s = openT(t, dir, Options{SegmentBytes: 64 << 10, TruncateSegments: 1 << 20}) // no truncation: every record stays
	check(s)
	c, _ = s.Cursor("a", CursorOptions{})
	if r := readAll(t, c, 1); r[0].ID.Seq != 1778 {
		t.Fatalf("cursor resumed at %d", r[0].ID.Seq)
	}
}

// TestInterruptedTidwallTruncation: a .START or .END file left by an
// interrupted tidwall/wal truncation is finished at open, as tidwall would.
func TestInterruptedTidwallTruncation(t *testing.T) {
	for _, kind := range []string{"front", "back"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{SegmentBytes: 1024, TruncateSegments: 1 << 20})
			n := fillSegments(t, s, 4)
			s.mu.Lock()
			segs := append([]segment(nil), s.segs...)
			s.mu.Unlock()
			s.Close()
			var first, last uint64
			if kind == "front" {
				// The second segment, rewritten as the new first one.
				b, _ := os.ReadFile(segs[1].path)
				os.WriteFile(segs[1].path+".START", b, 0o640)
				first, last = segs[1].first, uint64(n)
			} else {
				// The second segment cut after its first record, becoming the tail.
				b, _ := os.ReadFile(segs[1].path)
				_, fn, _ := nextFrame(b)
				os.WriteFile(segs[1].path+".END", b[:fn], 0o640)
				first, last = 1, segs[1].first
			}
			if r, err := Verify(dir); err != nil || r.Recovery.FinishedTruncat != kind {
				t.Fatalf("verify: %+v %v", r.Recovery, err)
			}
			s = openT(t, dir, Options{SegmentBytes: 1024})
			if s.FirstSeq() != first || s.LastSeq() != last || s.Recovery().FinishedTruncat != kind {
				t.Fatalf("after open: first %d last %d (%+v), want %d..%d", s.FirstSeq(), s.LastSeq(), s.Recovery(), first, last)
			}
			c, _ := s.Cursor("r", CursorOptions{FromOldest: true})
			recs := readAll(t, c, int(last-first+1))
			for _, r := range recs {
				if !bytes.Equal(r.Data, payload(int(r.ID.Seq-1))) {
					t.Fatalf("record %d differs", r.ID.Seq)
				}
			}
			if id, err := s.Append(context.Background(), []byte("next")); err != nil || id.Seq != last+1 {
				t.Fatalf("append: %+v %v", id, err)
			}
		})
	}
}

// A truncation asked for twice before it ran (two flushes in a row) runs
// once: the second request finds it done and neither rewrites the first
// segment again nor counts.
func TestTruncationAskedTwiceRunsOnce(t *testing.T) {
	dir, s, c, recs := readSegments(t)
	n := len(recs)
	c.Ack(recs[len(recs)-1].ID.Seq)
	s.mu.Lock()
	upTo := s.segs[len(s.segs)-2].last
	s.mu.Unlock()
	s.trunc <- upTo
	s.trunc <- upTo // taken only once the first is being run
	waitForState(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.segs[0].first == upTo && len(s.trunc) == 0
	}, func() any { return s.Stats() })
	appendN(t, s, n, 1) // a round trip through the commit goroutine: the second request has run
	if st := s.Stats(); st.Truncations != 1 {
		t.Fatalf("truncations %d, want 1: %+v", st.Truncations, st)
	}
	if rep, err := Verify(dir); err != nil || !rep.Recovery.Clean() {
		t.Fatalf("verify: %v %+v", err, rep.Recovery)
	}
}

// Records encoded in place with Begin/End read back byte for byte, empty
// ones included; a batch with one oversized record spools nothing.
func TestAppendBatchEncodedInPlace(t *testing.T) {
	s := openT(t, t.TempDir(), Options{MaxRecordBytes: 1000})
	c, _ := s.Cursor("a", CursorOptions{})
	want := [][]byte{payload(1), {}, bytes.Repeat([]byte{'z'}, 1000), payload(49)}
	b := NewBatch(2, 10) // smaller than needed: it grows
	for _, w := range want {
		buf := b.Begin()
		buf = append(buf, w[:len(w)/2]...) // in pieces, as an encoder appends
		buf = append(buf, w[len(w)/2:]...)
		b.End(buf)
	}
	if b.Len() != len(want) {
		t.Fatalf("Len %d", b.Len())
	}
	first, err := s.AppendBatch(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range readAll(t, c, len(want)) {
		if r.ID.Seq != first.Seq+uint64(i) || !bytes.Equal(r.Data, want[i]) {
			t.Fatalf("record %d: %v %q", i, r.ID, r.Data)
		}
	}

	b = NewBatch(2, 0)
	b.Add(payload(2))
	b.Add(make([]byte, 1001))
	if _, err := s.AppendBatch(context.Background(), b); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized record: %v", err)
	}
	readNone(t, c)
	if id, err := s.AppendBatch(context.Background(), NewBatch(0, 0)); err != nil || id != (ID{}) {
		t.Fatalf("empty batch: %v %v", id, err)
	}
}

// A batch the spool took (appended, or queued before a timeout) is not
// taken again: a second AppendBatch is an error, not an empty success that
// a caller retrying after a timeout would read as written.
func TestAppendBatchTwiceIsAnError(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	c, _ := s.Cursor("a", CursorOptions{})
	b := NewBatch(1, 8)
	b.Add(payload(1))
	if _, err := s.AppendBatch(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if id, err := s.AppendBatch(context.Background(), b); !errors.Is(err, errSpentBatch) {
		t.Fatalf("second AppendBatch of one batch: %v %v, want errSpentBatch", id, err)
	}
	if got := readAll(t, c, 1); len(got) != 1 {
		t.Fatalf("read %d records", len(got))
	}
	readNone(t, c)
}

// ReadFrom re-reads any range by sequence, across segments, without a
// cursor; after a truncation it starts at the oldest record left.
func TestReadFrom(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 1024, TruncateSegments: 1})
	c, _ := s.Cursor("a", CursorOptions{})
	n := fillSegments(t, s, 6)
	for from := 1; from <= n; from += 7 {
		var got []Record
		for next := uint64(from); ; {
			recs, err := s.ReadFrom(next, 5, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) == 0 {
				break
			}
			got = append(got, recs...)
			next = recs[len(recs)-1].ID.Seq + 1
		}
		if len(got) != n-from+1 {
			t.Fatalf("from %d: %d records, want %d", from, len(got), n-from+1)
		}
		for i, r := range got {
			if r.ID.Seq != uint64(from+i) {
				t.Fatalf("from %d: record %d has seq %d", from, i, r.ID.Seq)
			}
			if want := payload(from + i - 1); !bytes.Equal(r.Data, want) {
				t.Fatalf("seq %d: %q, want %q", r.ID.Seq, r.Data, want)
			}
		}
	}
	if recs, err := s.ReadFrom(uint64(n+1), 5, 1<<20); err != nil || len(recs) != 0 {
		t.Fatalf("past the end: %d records, %v", len(recs), err)
	}
	recs := readAll(t, c, n)
	c.Ack(recs[n/2].ID.Seq)
	waitFor(t, func() bool { s.Flush(); return s.Stats().Truncations > 0 })
	s.mu.Lock()
	front := s.segs[0].first
	s.mu.Unlock()
	got, err := s.ReadFrom(1, 1, 1<<20)
	if err != nil || len(got) != 1 || got[0].ID.Seq != front {
		t.Fatalf("after truncation: %+v %v, front %d", got, err, front)
	}
}

// A cursor created at the tail remembers the last record it was born
// after, across a restart; one created on an empty spool or at the oldest
// record has seen everything (0). A cursor file of the previous format
// ("SLC1", no born) is read whole, born 0.
func TestCursorBornAtTheTail(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	early, _ := s.Cursor("early", CursorOptions{})
	appendN(t, s, 0, 10)
	late, _ := s.Cursor("late", CursorOptions{})
	oldest, _ := s.Cursor("oldest", CursorOptions{FromOldest: true})
	if early.Born() != 0 || late.Born() != 10 || oldest.Born() != 0 {
		t.Fatalf("born: early %d, late %d, oldest %d", early.Born(), late.Born(), oldest.Born())
	}
	appendN(t, s, 10, 5)
	readAll(t, late, 5)
	late.Ack(15)
	s.Close()

	// The previous format, written by hand: acked 7, 3 dropped in [2,4].
	b := []byte("SLC1")
	for _, v := range []uint64{7, 3} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	b = binary.LittleEndian.AppendUint32(b, 1)
	b = binary.LittleEndian.AppendUint64(b, 2)
	b = binary.LittleEndian.AppendUint64(b, 4)
	b = binary.LittleEndian.AppendUint32(b, crc(b))
	if err := os.WriteFile(filepath.Join(dir, "cursors", "early.cursor"), b, 0o640); err != nil {
		t.Fatal(err)
	}

	s = openT(t, dir, Options{})
	late, _ = s.Cursor("late", CursorOptions{})
	early, _ = s.Cursor("early", CursorOptions{})
	if late.Born() != 10 || late.Acked() != 15 {
		t.Fatalf("after a restart: late born %d, acked %d", late.Born(), late.Acked())
	}
	if early.Born() != 0 || early.Acked() != 7 || early.DroppedTotal() != 3 || !early.Dropped(3) || early.Dropped(5) {
		t.Fatalf("SLC1 file: born %d, acked %d, dropped %d", early.Born(), early.Acked(), early.DroppedTotal())
	}
	for _, i := range s.Cursors() {
		if i.Reset {
			t.Fatalf("cursor %s was reset", i.Name)
		}
	}
}
