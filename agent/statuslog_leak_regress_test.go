package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// brokenLogDir opens a spool in dir whose status log named log cannot be
// rewritten (its .tmp is a non-empty directory: the WriteFile fails, and
// so does the Remove), so that openSeqLog leaves the log broken with its
// retry timer armed.
func brokenLogDir(t *testing.T, dir, log string) (sp, dl *spool.Spool, blocker string) {
	t.Helper()
	var err error
	if sp, err = spool.Open(filepath.Join(dir, "spool"), spool.Options{Logger: quiet()}); err != nil {
		t.Fatal(err)
	}
	if dl, err = spool.Open(filepath.Join(dir, "deadletter"), spool.Options{Logger: quiet(), FullPolicy: spool.DropOldest}); err != nil {
		t.Fatal(err)
	}
	blocker = filepath.Join(sp.Dir(), log+".tmp")
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	return sp, dl, blocker
}

// New opens every sink's status logs; a log that could not be rewritten at
// open arms a retry timer (every second until close). When New then fails
// (a later sink's bad name here), it closes the logs: no timer outlives
// the failed New to write into a spool directory the caller has closed
// and unlocked, maybe for another agent.
func TestFailedNewClosesTheStatusLogs(t *testing.T) {
	dir := t.TempDir()
	sp, dl, blocker := brokenLogDir(t, dir, AheadFilePrefix+"s")
	_, err := New(Options{Spool: sp, DeadLetter: dl, Logger: quiet(), Listen: "127.0.0.1:0", AdminListen: "-",
		Sinks: []SinkSpec{{Name: "s", Sink: (&memSink{}).sink()}, {Name: strings.Repeat("x", MaxSinkNameBytes+1), Sink: (&memSink{}).sink()}}})
	if err == nil {
		t.Fatal("New accepted a sink name that is too long")
	}
	sp.Close()
	dl.Close()
	if err := os.RemoveAll(blocker); err != nil { // the disk "has room" again
		t.Fatal(err)
	}
	path := filepath.Join(dir, "spool", AheadFilePrefix+"s")
	time.Sleep(seqLogRetry + seqLogRetry/2)
	if _, err := os.Stat(path); err == nil {
		t.Fatalf("%s was written %v after New failed and the spool was closed: the failed New left a timer running", filepath.Base(path), seqLogRetry)
	}
}

// The same through Run: a Run that fails before serving (the ingest
// address cannot be listened on) closes the status logs, so no retry timer
// runs on after Run returned.
func TestFailedRunClosesTheStatusLogs(t *testing.T) {
	dir := t.TempDir()
	sp, dl, blocker := brokenLogDir(t, dir, AheadFilePrefix+"s")
	a, err := New(Options{Spool: sp, DeadLetter: dl, Logger: quiet(), Listen: "256.0.0.1:1", AdminListen: "-",
		Sinks: []SinkSpec{{Name: "s", Sink: (&memSink{}).sink()}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); err == nil {
		t.Fatal("Run listened on 256.0.0.1")
	}
	l := a.fwds[0].aheadLog
	l.mu.Lock()
	closed, timer := l.closed, l.timer
	l.mu.Unlock()
	if !closed || timer != nil {
		t.Fatalf("after a failed Run the ahead log is closed=%v, its retry timer armed=%v", closed, timer != nil)
	}
	sp.Close()
	dl.Close()
	os.RemoveAll(blocker)
}
