package agent

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sluiceio/sluice/spool"
)

// A kept id (the id a chained message was pushed with, or a replayed dead
// letter's id) does not tell where its records are, so the records cache
// maps it to them. That cache must read the same after a restart, also
// for records the spool has truncated meanwhile (delivered everywhere).
// So each mapping is also appended to SPOOL_DIR/kept-ids, one line
// "<id> <epoch> <seq>", before the push is acknowledged. The file is not
// fsynced: it survives a process crash; after a machine crash the records
// the spool still holds are found again by the start-up scan (loadKept),
// and a lost line for a truncated record reads `unknown`, never a false
// state. At start the file is read and rewritten from the cache (at most
// RecordCache ids); while running it is rewritten the same way once it
// holds twice as many lines.

// KeptIDsFile is the kept-id log's name in the spool directory.
const KeptIDsFile = "kept-ids"

type keptLog struct {
	path  string
	f     *os.File // opened at the first write
	buf   []byte   // lines not written yet
	lines int      // lines in the file
}

// readKept loads the kept-id log of dir into r (a missing file: none)
// and attaches the log to r.
func (r *records) readKept(dir string) error {
	k := &keptLog{path: filepath.Join(dir, KeptIDsFile)}
	f, err := os.Open(k.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			id, sid, ok := parseKeptLine(sc.Text())
			if ok { // a torn last line after a crash is skipped
				r.setChained(id, sid)
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.kept = k
	r.mu.Unlock()
	return nil
}

func parseKeptLine(s string) (string, spool.ID, bool) {
	f := strings.Fields(s)
	if len(f) != 3 || !validID(f[0]) {
		return "", spool.ID{}, false
	}
	e, err1 := strconv.ParseUint(f[1], 10, 32)
	q, err2 := strconv.ParseUint(f[2], 10, 64)
	if err1 != nil || err2 != nil || q == 0 {
		return "", spool.ID{}, false
	}
	return f[0], spool.ID{Epoch: uint32(e), Seq: q}, true
}

func appendKeptLine(b []byte, id string, sid spool.ID) []byte {
	b = append(b, id...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(sid.Epoch), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, sid.Seq, 10)
	return append(b, '\n')
}

// flushKept writes the mappings recorded since the last call (before the
// push that made them is acknowledged).
func (r *records) flushKept() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.kept
	if k == nil || len(k.buf) == 0 {
		return nil
	}
	n := strings.Count(string(k.buf), "\n")
	if k.lines+n > 2*r.chained.max {
		k.buf = k.buf[:0]
		return r.rewriteKeptLocked()
	}
	if k.f == nil {
		f, err := os.OpenFile(k.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			k.buf = k.buf[:0]
			return fmt.Errorf("kept ids: %w", err)
		}
		k.f = f
	}
	_, err := k.f.Write(k.buf)
	k.buf = k.buf[:0]
	k.lines += n
	if err != nil {
		return fmt.Errorf("kept ids: %w", err)
	}
	return nil
}

// rewriteKept replaces the log with the cache's mappings, oldest first.
func (r *records) rewriteKept() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kept == nil {
		return nil
	}
	r.kept.buf = r.kept.buf[:0]
	return r.rewriteKeptLocked()
}

func (r *records) rewriteKeptLocked() error {
	k, b := r.kept, []byte(nil)
	lines := 0
	ring := r.chained.ring
	for i := range ring {
		id := ring[(r.chained.next+i)%len(ring)]
		for _, sid := range r.chained.m[id] {
			b = appendKeptLine(b, id, sid)
			lines++
		}
	}
	if k.f != nil {
		k.f.Close()
		k.f = nil
	}
	tmp := k.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("kept ids: %w", err)
	}
	if err := os.Rename(tmp, k.path); err != nil {
		return fmt.Errorf("kept ids: %w", err)
	}
	k.lines = lines
	return nil
}

// closeKept closes the log file.
func (r *records) closeKept() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kept == nil || r.kept.f == nil {
		return nil
	}
	err := r.kept.f.Close()
	r.kept.f = nil
	return err
}
