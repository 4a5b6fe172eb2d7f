package spool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A machine crash cut the tail (records 8..10 unsynced) below a cursor
// that had dropped, and so acknowledged, 1..10. Open moves the cursor back
// to 7 and persists it before it returns: records 8..10 of the new epoch,
// appended and synced (accepted), are read after a kill -9 right away.
// Before (found by a third review), the cursor was only marked dirty and
// written at the next CursorSyncInterval; a kill -9 before it left the old
// file, {acked 10, dropped 1..10}, beside a WAL that ends at 10 again, and
// the accepted records were taken as dropped and never read.
// (CursorSyncInterval is an hour here so that no timer persists it.)
func TestCursorsMovedBackToACutTailArePersistedAtOpen(t *testing.T) {
	dir := t.TempDir()
	s, c := droppedThenCut(t, dir, Options{CursorSyncInterval: time.Hour})
	if c.Acked() != 7 || c.Dropped(8) {
		t.Fatalf("setup: after the cut acked %d, 8 dropped %t", c.Acked(), c.Dropped(8))
	}
	again := appendN(t, s, 100, 3) // 8..10 again, synced (SyncAlways): accepted
	if again[0].Seq != 8 {
		t.Fatalf("setup: appended %+v", again)
	}
	crashed := t.TempDir()
	copyDir(t, dir, crashed) // kill -9 now: what the disk and page cache hold

	s2 := openT(t, crashed, Options{})
	c2, err := s2.Cursor("c", CursorOptions{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range again {
		if c2.Dropped(id.Seq) || id.Seq <= c2.Acked() {
			t.Errorf("record %+v, accepted (synced) after the cut, never read nor dropped, reads dropped %t, acknowledged %t (cursor acked %d)",
				id, c2.Dropped(id.Seq), id.Seq <= c2.Acked(), c2.Acked())
		}
	}
}

// When the cursors a cut tail moved back cannot be persisted at Open (here
// the temporary file's name is taken by a directory; a stand-in for an I/O
// error), Open fails with that error instead of accepting appends that
// would take the lost sequences again; once the disk takes writes, it
// opens with the cursor moved back. Before (found by a fourth review), Open
// only logged the failure, and a kill -9 before a later persist skipped the
// accepted records.
func TestOpenFailsWhenCutCursorsCannotBePersisted(t *testing.T) {
	dir := t.TempDir()
	dropAllThenCut(t, dir, Options{}, "c")
	obstacle := filepath.Join(dir, "cursors", "c.cursor.tmp")
	if err := os.MkdirAll(filepath.Join(obstacle, "x"), 0o750); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(dir, Options{Logger: quiet()}); err == nil {
		s.Close()
		t.Fatal("Open succeeded with the cut cursor not persisted")
	} else if !strings.Contains(err.Error(), "persist cursors moved back to a cut tail") {
		t.Fatalf("Open: %v", err)
	}
	if err := os.RemoveAll(obstacle); err != nil {
		t.Fatal(err)
	}
	s := openT(t, dir, Options{})
	c, err := s.Cursor("c", CursorOptions{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.Acked() != 7 || s.LastSeq() != 7 || c.Dropped(8) {
		t.Fatalf("after the cut: cursor acked %d, last record %d, 8 dropped %t", c.Acked(), s.LastSeq(), c.Dropped(8))
	}
}
