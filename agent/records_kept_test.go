package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluiceio/sluice/spool"
)

// A chained message reads delivered after its record was truncated from
// the spool and the agent restarted: the kept-id log remembers where it
// was. Before the log, the id was known only to the in-memory cache and
// the records still spooled, and read unknown.
func TestKeptIDOutlivesTruncationAndRestart(t *testing.T) {
	dir := t.TempDir()
	mem := &memSink{}
	so := spool.Options{SegmentBytes: 4 << 10}
	o := Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}}
	ta := startAgentSpool(t, dir, o, so)
	r := do(t, "POST", ta.url+"/v1/messages", "application/json", []byte(`{"messages":[{"topic":"t","value":1,"id":"upstream-1-7"}]}`), nil)
	if r.status != 202 || r.ids[0] != "upstream-1-7" {
		t.Fatalf("chained push: %+v", r)
	}
	filler := []byte(strings.Repeat("f", 1000))
	for i := 0; ta.sp.FirstSeq() <= 1; i++ {
		if r := do(t, "POST", ta.url+"/v1/topics/t", "", filler, nil); r.status != 202 {
			t.Fatalf("filler %d: %+v", i, r)
		}
		if i > 2000 {
			t.Fatalf("spool front never truncated (first seq %d)", ta.sp.FirstSeq())
		}
		if i%20 == 19 {
			waitFor(t, "delivery", func() bool { return len(mem.messages()) == i+2 })
		}
	}
	if st := getStatus(t, ta, "upstream-1-7"); st.Status != "delivered" {
		t.Fatalf("before the restart: %+v", st)
	}
	ta.stop(t)

	ta = startAgentSpool(t, dir, o, so)
	if st := getStatus(t, ta, "upstream-1-7"); st.Status != "delivered" {
		t.Fatalf("truncated chained message after a restart: %+v, want delivered", st)
	}
	if st := getStatus(t, ta, "upstream-1-8"); st.Status != "unknown" {
		t.Fatalf("an id never pushed: %+v, want unknown", st)
	}
}

// The kept-id log stays bounded: it is rewritten from the cache once it
// holds twice the cache's size, and a torn last line is skipped.
func TestKeptIDLogBounded(t *testing.T) {
	dir := t.TempDir()
	r := newRecords(4)
	if err := r.readKept(dir); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		r.setChained("id-"+string(rune('a'+i)), spool.ID{Epoch: 1, Seq: uint64(i + 1)})
		if err := r.flushKept(); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, KeptIDsFile))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n > 8 {
		t.Fatalf("log holds %d lines for a cache of 4", n)
	}
	if err := os.WriteFile(filepath.Join(dir, KeptIDsFile), append(b, "id-y 1"...), 0o600); err != nil { // torn mid-line
		t.Fatal(err)
	}
	r2 := newRecords(4)
	if err := r2.readKept(dir); err != nil {
		t.Fatal(err)
	}
	if pos, ok := r2.lookupChained("id-t"); !ok || pos[0].Seq != 20 {
		t.Fatalf("latest id after reload: %v %v", pos, ok)
	}
	if _, ok := r2.lookupChained("id-y"); ok {
		t.Fatal("a torn line was loaded")
	}
}
