package file

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sluiceio/sluice/sink"
)

// Record is one decoded output line. ParseLine inverts AppendRecord: every
// field holds exactly the bytes of the message that was written, except that
// invalid UTF-8 in ID, Topic and header names reads back as U+FFFD.
type Record struct {
	ID      string
	Topic   string
	Key     []byte // nil when the line has no key; empty but non-nil for ""
	Headers []sink.Header
	Value   []byte // never nil
	Time    time.Time
	// Partition is sink.NoPartition when the line has no "partition".
	Partition int32
}

// Message returns the record as a sink.Message.
func (r Record) Message() sink.Message {
	return sink.Message{
		ID:        r.ID,
		Topic:     r.Topic,
		Key:       r.Key,
		Value:     r.Value,
		Headers:   r.Headers,
		Time:      r.Time,
		Partition: r.Partition,
	}
}

// ErrBadRecord is wrapped by ParseLine errors: the line is not a record
// written by AppendRecord.
var ErrBadRecord = errors.New("file: malformed record")

// wireRecord is the JSON shape of a line. Pointers and raw values tell an
// absent field from an empty one.
type wireRecord struct {
	ID         *string         `json:"id"`
	Topic      *string         `json:"topic"`
	Key        *string         `json:"key"`
	KeyB64     *string         `json:"key_b64"`
	Headers    json.RawMessage `json:"headers"`
	HeadersB64 json.RawMessage `json:"headers_b64"`
	Value      json.RawMessage `json:"value"`
	ValueB64   *string         `json:"value_b64"`
	Timestamp  *string         `json:"timestamp"`
	Partition  *int32          `json:"partition"`
}

// ParseLine decodes one line written by AppendRecord (with or without its
// trailing newline). It is meant for tests and tools; it is not fast.
func ParseLine(line []byte) (Record, error) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	var w wireRecord
	if err := json.Unmarshal(line, &w); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if w.ID == nil || w.Topic == nil || w.Timestamp == nil {
		return Record{}, fmt.Errorf("%w: missing id, topic or timestamp", ErrBadRecord)
	}
	r := Record{ID: *w.ID, Topic: *w.Topic, Partition: sink.NoPartition}

	var err error
	switch {
	case w.Key != nil && w.KeyB64 != nil:
		return Record{}, fmt.Errorf("%w: both key and key_b64", ErrBadRecord)
	case w.Key != nil:
		r.Key = []byte(*w.Key)
	case w.KeyB64 != nil:
		if r.Key, err = base64.StdEncoding.AppendDecode([]byte{}, []byte(*w.KeyB64)); err != nil {
			return Record{}, fmt.Errorf("%w: key_b64: %w", ErrBadRecord, err)
		}
	}

	switch {
	case w.Headers != nil && w.HeadersB64 != nil:
		return Record{}, fmt.Errorf("%w: both headers and headers_b64", ErrBadRecord)
	case w.Headers != nil:
		r.Headers, err = parseHeaders(w.Headers, false)
	case w.HeadersB64 != nil:
		r.Headers, err = parseHeaders(w.HeadersB64, true)
	}
	if err != nil {
		return Record{}, err
	}

	switch {
	case w.Value != nil && w.ValueB64 != nil:
		return Record{}, fmt.Errorf("%w: both value and value_b64", ErrBadRecord)
	case w.ValueB64 != nil:
		if r.Value, err = base64.StdEncoding.AppendDecode([]byte{}, []byte(*w.ValueB64)); err != nil {
			return Record{}, fmt.Errorf("%w: value_b64: %w", ErrBadRecord, err)
		}
	case len(w.Value) > 0 && w.Value[0] == '"':
		var s string
		if err := json.Unmarshal(w.Value, &s); err != nil {
			return Record{}, fmt.Errorf("%w: value: %w", ErrBadRecord, err)
		}
		r.Value = []byte(s)
	case w.Value != nil:
		r.Value = bytes.Clone([]byte(w.Value))
	default:
		return Record{}, fmt.Errorf("%w: missing value", ErrBadRecord)
	}

	if r.Time, err = time.Parse(time.RFC3339Nano, *w.Timestamp); err != nil {
		return Record{}, fmt.Errorf("%w: timestamp: %w", ErrBadRecord, err)
	}
	if w.Partition != nil {
		r.Partition = *w.Partition
	}
	return r, nil
}

// parseHeaders reads a headers object token by token, keeping the order and
// any repeated names.
func parseHeaders(raw json.RawMessage, b64 bool) ([]sink.Header, error) {
	bad := func(err error) ([]sink.Header, error) {
		return nil, fmt.Errorf("%w: headers: %w", ErrBadRecord, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil {
		return bad(err)
	} else if tok != json.Delim('{') {
		return bad(errors.New("not an object"))
	}
	var hs []sink.Header
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return bad(err)
		}
		vt, err := dec.Token()
		if err != nil {
			return bad(err)
		}
		v, ok := vt.(string)
		if !ok {
			return bad(fmt.Errorf("value of %q is not a string", kt))
		}
		h := sink.Header{Key: kt.(string), Value: []byte(v)}
		if b64 {
			if h.Value, err = base64.StdEncoding.AppendDecode([]byte{}, []byte(v)); err != nil {
				return bad(err)
			}
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// ReadRecords parses every line of r. Empty lines are skipped.
func ReadRecords(r io.Reader) ([]Record, error) {
	br := bufio.NewReader(r)
	var recs []Record
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && !(len(line) == 1 && line[0] == '\n') {
			rec, perr := ParseLine(line)
			if perr != nil {
				return recs, fmt.Errorf("line %d: %w", n, perr)
			}
			recs = append(recs, rec)
		}
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
	}
}

// ReadDir parses every output file in dir, oldest first (by sequence
// number), and returns the records in the order they were written.
func ReadDir(dir string) ([]Record, error) {
	files, err := listFiles(dir)
	if err != nil {
		return nil, err
	}
	var recs []Record
	for _, f := range files {
		fh, err := os.Open(filepath.Join(dir, f.name))
		if err != nil {
			return recs, err
		}
		rs, err := ReadRecords(fh)
		fh.Close()
		recs = append(recs, rs...)
		if err != nil {
			return recs, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return recs, nil
}
