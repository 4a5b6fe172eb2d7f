package loadgen

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/sluiceio/sluice/sink/file"
)

// ReadFileSink reads every delivery in the file sink directory dir: all
// *.ndjson files in name order (the file sink names sort by age), line by
// line with file.ParseLine. A last line without its newline is a batch the
// sink is still writing and is skipped; the next read sees it whole. Any
// other line that does not parse is an error.
func ReadFileSink(dir string) ([]Delivered, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.ndjson"))
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []Delivered
	for _, name := range names {
		if out, err = readFileSinkFile(name, out); err != nil {
			return out, err
		}
	}
	return out, nil
}

func readFileSinkFile(name string, out []Delivered) ([]Delivered, error) {
	f, err := os.Open(name)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil // removed since the glob
	}
	if err != nil {
		return out, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			return out, nil // an unterminated last line is still being written
		}
		if err != nil {
			return out, fmt.Errorf("%s: %w", name, err)
		}
		if len(line) == 1 {
			continue
		}
		rec, err := file.ParseLine(line)
		if err != nil {
			return out, fmt.Errorf("%s line %d: %w", name, n, err)
		}
		d := Delivered{ID: rec.ID, Topic: rec.Topic, Key: string(rec.Key), N: -1, Partition: -1, Offset: -1}
		if vf, ok := ParseValue(rec.Value); ok {
			d.Run, d.N = vf.Run, vf.N
		}
		out = append(out, d)
	}
}
