package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// damageFramingAfter overwrites, in place, the 5 bytes after marker in the
// spool segment holding it: with the value last in a plain record, they
// are the next record's frame length, which then parses as no frame.
func damageFramingAfter(t *testing.T, dir, marker string) {
	t.Helper()
	overwriteNear(t, dir, marker, []byte{0xff, 0xff, 0xff, 0xff, 0x0f},
		func(_ []byte, i int) int { return i + len(marker) })
}

// overwriteNear writes data, in place (as a disk damages a record, not a
// rewrite that truncates first), at the offset at picks in the spool
// segment holding marker (i is where marker starts).
func overwriteNear(t *testing.T, dir, marker string, data []byte, at func(b []byte, i int) int) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "spool", "wal", "*"))
	for _, p := range segs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		i := bytes.Index(b, []byte(marker))
		if i < 0 {
			continue
		}
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteAt(data, int64(at(b, i)))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("%q not on disk", marker)
}

// TestStatusOfRecordsLostToDamageIsNeverDelivered: the framing of a record
// is damaged on disk while its topic's lane is stuck. Reading it again
// skips the rest of its segment (it and the intact record after it), and
// the cursor moves past both as past delivered records: their statuses
// read unknown (spool_damaged), not delivered. They read delivered before
// the spool noted them lost.
func TestStatusOfRecordsLostToDamageIsNeverDelivered(t *testing.T) {
	dir := t.TempDir()
	g := newGateSink(true)
	ta := startAgent(t, dir, Options{Sinks: []SinkSpec{g.spec()}})
	r1 := do(t, "POST", ta.url+"/v1/topics/a", "", []byte("lost-one-MARK1"), nil)
	waitFor(t, "topic a stuck", func() bool { return g.tries() >= 2 })
	r2 := do(t, "POST", ta.url+"/v1/topics/a", "", []byte("lost-two-MARK2"), nil)
	r3 := do(t, "POST", ta.url+"/v1/topics/a", "", []byte("lost-three-MARK3"), nil)
	if r1.status != 202 || r2.status != 202 || r3.status != 202 {
		t.Fatalf("push: %+v %+v %+v", r1, r2, r3)
	}
	damageFramingAfter(t, dir, "lost-one-MARK1")
	g.setShut(false)
	f := ta.a.fwds[0]
	waitFor(t, "cursor past the damage", func() bool { return f.cursor.Acked() >= ta.sp.LastSeq() })
	delivered := g.values()
	if !slices.Equal(delivered, []string{"lost-one-MARK1"}) {
		t.Fatalf("the sink got %q, want only the record before the damage", delivered)
	}
	if st := getStatus(t, ta, r1.ids[0]); st.Status != "delivered" {
		t.Errorf("the record before the damage: %+v", st)
	}
	for _, r := range []reply{r2, r3} {
		st := getStatus(t, ta, r.ids[0])
		if st.Status != "unknown" || st.Sinks["mem"].Reason != "spool_damaged" {
			t.Errorf("a record lost to damage: %+v, want unknown (spool_damaged)", st)
		}
	}
	if n := ta.sp.Stats().LostRecords; n != 2 {
		t.Errorf("LostRecords %d, want 2", n)
	}
}

// gateSink refuses every batch while shut (counting the tries) and keeps
// the values and ids of what it takes: a sink to hold messages back with,
// then let through.
type gateSink struct {
	mu          sync.Mutex
	shut        bool
	tried       int
	vals, idset []string
}

func newGateSink(shut bool) *gateSink { return &gateSink{shut: shut} }

// spec is the sink "mem", retried every 10-50 ms.
func (g *gateSink) spec() SinkSpec {
	return SinkSpec{Name: "mem", Sink: funcSink{write: g.write}, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}
}

func (g *gateSink) write(_ context.Context, msgs []sink.Message) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut {
		g.tried++
		return errTransient
	}
	for _, m := range msgs {
		g.vals = append(g.vals, string(m.Value))
		g.idset = append(g.idset, m.ID)
	}
	return nil
}

func (g *gateSink) setShut(shut bool) { g.mu.Lock(); g.shut = shut; g.mu.Unlock() }
func (g *gateSink) tries() int        { g.mu.Lock(); defer g.mu.Unlock(); return g.tried }
func (g *gateSink) values() []string  { g.mu.Lock(); defer g.mu.Unlock(); return slices.Clone(g.vals) }
func (g *gateSink) ids() []string     { g.mu.Lock(); defer g.mu.Unlock(); return slices.Clone(g.idset) }
