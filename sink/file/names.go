package file

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	namePrefix = "sluice-"
	nameSuffix = ".ndjson"
	// nameTime is the UTC creation time in a file name: sortable, no colons.
	nameTime = "20060102T150405Z"
)

// fileName returns the name of output file seq created at t.
func fileName(t time.Time, seq uint64) string {
	return fmt.Sprintf("%s%s-%06d%s", namePrefix, t.UTC().Format(nameTime), seq, nameSuffix)
}

type outputFile struct {
	name string
	seq  uint64
}

// parseName returns the sequence number of an output file name.
func parseName(name string) (uint64, bool) {
	rest, ok := strings.CutPrefix(name, namePrefix)
	if !ok {
		return 0, false
	}
	if rest, ok = strings.CutSuffix(rest, nameSuffix); !ok {
		return 0, false
	}
	ts, seqs, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	if _, err := time.Parse(nameTime, ts); err != nil {
		return 0, false
	}
	seq, err := strconv.ParseUint(seqs, 10, 64)
	if err != nil {
		return 0, false
	}
	return seq, true
}

// listFiles returns the output files in dir ordered by sequence number.
func listFiles(dir string) ([]outputFile, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []outputFile
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		if seq, ok := parseName(e.Name()); ok {
			files = append(files, outputFile{e.Name(), seq})
		}
	}
	slices.SortFunc(files, func(a, b outputFile) int {
		if c := cmp.Compare(a.seq, b.seq); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return files, nil
}

// cutTornTail truncates path after its last '\n' when the file does not end
// with one: the remains of a write that a crash interrupted (never
// acknowledged, so sent again to a new file). It reports whether it cut.
func cutTornTail(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	size := fi.Size()
	if size == 0 {
		return false, nil
	}
	good, err := lastLineEnd(f, size)
	if err != nil {
		return false, err
	}
	if good == size {
		return false, nil
	}
	if err := f.Truncate(good); err != nil {
		return false, err
	}
	if err := f.Sync(); err != nil {
		return false, err
	}
	return true, f.Close()
}

// lastLineEnd returns the offset just past the last '\n' in the first size
// bytes of f, or 0 when there is none.
func lastLineEnd(f io.ReaderAt, size int64) (int64, error) {
	buf := make([]byte, 64<<10)
	end := size
	for end > 0 {
		n := int64(len(buf))
		if n > end {
			n = end
		}
		chunk := buf[:n]
		if _, err := f.ReadAt(chunk, end-n); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			return end - n + int64(i) + 1, nil
		}
		end -= n
	}
	return 0, nil
}

// syncDir fsyncs a directory so that a file created in it survives a
// machine crash.
func syncDir(dir string) error {
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}
