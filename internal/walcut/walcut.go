// Package walcut cuts a spool's WAL segment as a machine crash that lost
// its unsynced tail does, for tests of what outlives such a cut.
package walcut

import (
	"encoding/binary"
	"os"
	"testing"
)

// KeepFirst cuts the segment file at path after its first keep entries
// (tidwall/wal frames each with a uvarint length).
func KeepFirst(t testing.TB, path string, keep int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for range keep {
		n, k := binary.Uvarint(b[off:])
		if k <= 0 {
			t.Fatalf("segment ends before entry %d", keep)
		}
		off += k + int(n)
	}
	if err := os.Truncate(path, int64(off)); err != nil {
		t.Fatal(err)
	}
}
