package agent

import (
	"os"
	"syscall"
	"testing"
)

// TestStatusWhileTheSpoolCannotBeReadNamesNoOtherSink: a
// message to topic "ta" targets sink "a" only. Sink "b" (topic "tb") has
// moved its cursor past it, as it does past every record not its own.
// While the spool cannot open the record's segment for a moment (no file
// descriptor free: Get returns EMFILE, not "no record"), status takes the
// record for gone and derives statuses for every sink: it reports the
// message "delivered" to sink "b", which it was never sent to and never
// targeted. A transient read error is not a record gone: the status reads
// unknown meanwhile. Found by review, with this test.
func TestStatusWhileTheSpoolCannotBeReadNamesNoOtherSink(t *testing.T) {
	dir := t.TempDir()
	g := newGateSink(true)
	ga := g.spec()
	ga.Name, ga.Topics = "a", []string{"ta"}
	mem := &memSink{}
	ta := startAgent(t, dir, Options{Sinks: []SinkSpec{ga, {Name: "b", Sink: mem.sink(), Topics: []string{"tb"}}}})
	r1 := do(t, "POST", ta.url+"/v1/topics/ta", "", []byte("for-a-only"), nil)
	r2 := do(t, "POST", ta.url+"/v1/topics/tb", "", []byte("for-b"), nil)
	if r1.status != 202 || r2.status != 202 || len(r1.ids) != 1 {
		t.Fatalf("push: %+v %+v", r1, r2)
	}
	id := r1.ids[0]
	var fb *forwarder
	for _, f := range ta.a.fwds {
		if f.spec.Name == "b" {
			fb = f
		}
	}
	waitFor(t, "sink b past both", func() bool { return fb.cursor.Acked() >= ta.sp.LastSeq() })
	before := ta.a.status(id)
	if _, ok := before.Sinks["b"]; ok {
		t.Fatalf("setup: status names sink b: %+v", before)
	}

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	free := f.Fd()
	f.Close()
	low := lim
	low.Cur = uint64(free)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	st := ta.a.status(id)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if st.Status != "unknown" {
		t.Fatalf("status while the spool could not open a file: %+v, want unknown", st)
	}
	if ss, ok := st.Sinks["b"]; ok {
		t.Fatalf("while the spool could not open a file, status of a message for sink a only reported sink b %q (overall %q; before: %+v): a sink it never targeted",
			ss.Status, st.Status, before)
	}
}
