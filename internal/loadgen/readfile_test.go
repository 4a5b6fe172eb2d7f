package loadgen

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/file"
)

// runMessages returns n messages of run over keys k0..k<keys-1> with per-key
// sequence numbers, ids "id-<i>", and the matching Acked list.
func runMessages(run string, n, keys int) ([]sink.Message, []Acked) {
	msgs := make([]sink.Message, n)
	ack := make([]Acked, n)
	seq := make([]int64, keys)
	for i := range msgs {
		k := i % keys
		seq[k]++
		key := fmt.Sprintf("k%d", k)
		topic := fmt.Sprintf("bench-%d", k%2)
		id := fmt.Sprintf("id-%d", i)
		msgs[i] = sink.Message{
			ID: id, Topic: topic, Key: []byte(key), Partition: sink.NoPartition,
			Value: appendValue(nil, run, key, seq[k], 300),
			Time:  time.Unix(1_700_000_000, int64(i)),
		}
		ack[i] = Acked{ID: id, Topic: topic, Key: key, N: seq[k]}
	}
	return msgs, ack
}

// TestReadFileSink writes deliveries with the real file sink (small files,
// so several rotate) and reads them back.
func TestReadFileSink(t *testing.T) {
	dir := t.TempDir()
	w, err := file.New(file.Options{Dir: dir, RotateBytes: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(context.Background())
	msgs, ack := runMessages("r1", 200, 5)
	ctx := context.Background()
	for i := 0; i < len(msgs); i += 17 {
		if err := w.Write(ctx, msgs[i:min(i+17, len(msgs))]); err != nil {
			t.Fatal(err)
		}
	}
	// A retried batch (at-least-once) and another run in the same
	// directory.
	if err := w.Write(ctx, msgs[34:51]); err != nil {
		t.Fatal(err)
	}
	other, _ := runMessages("r2", 10, 2)
	for i := range other {
		other[i].ID = "other-" + other[i].ID
	}
	if err := w.Write(ctx, other); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.ndjson")); len(files) < 3 {
		t.Fatalf("want several files to read in order, got %d", len(files))
	}

	got, err := ReadFileSink(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 200+17+10 {
		t.Fatalf("read %d deliveries, want %d", len(got), 200+17+10)
	}
	for i, m := range msgs {
		d := got[i]
		if d.ID != m.ID || d.Topic != m.Topic || d.Key != string(m.Key) || d.Run != "r1" || d.N != ack[i].N || d.Partition != -1 {
			t.Fatalf("delivery %d = %+v, want id %s topic %s key %s n %d", i, d, m.ID, m.Topic, m.Key, ack[i].N)
		}
	}
	mine := FilterRun(got, "r1")
	v := Verify(ack[:len(ack)-1], mine) // the last push "was not acked"
	want := VerifyReport{Acked: 199, Delivered: 217, Unique: 200, Duplicates: 17, Unexpected: 1}
	if v.Acked != want.Acked || v.Delivered != want.Delivered || v.Unique != want.Unique || v.Duplicates != want.Duplicates ||
		v.Unexpected != want.Unexpected || v.Lost != 0 || v.OutOfOrder != 0 {
		t.Errorf("verify = %+v", v)
	}
	v = Verify(ack, mine[:150])
	if v.Lost != 50 || v.OK() {
		t.Errorf("verify of a cut-off read = %+v", v)
	}
}

// A last line without its newline is being written: skipped, and read on
// the next call once complete. A complete line that does not parse is an
// error.
func TestReadFileSinkPartialLine(t *testing.T) {
	dir := t.TempDir()
	msgs, _ := runMessages("r", 3, 1)
	line := func(i int) []byte { return file.AppendRecord(nil, &msgs[i]) }
	path := filepath.Join(dir, "sluice-20260102T030405Z-000001.ndjson")
	data := append(line(0), line(1)...)
	partial := line(2)
	if err := os.WriteFile(path, append(data, partial[:20]...), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a sink file\n"), 0o644)
	got, err := ReadFileSink(dir)
	if err != nil || len(got) != 2 {
		t.Fatalf("got %d deliveries, err %v; want 2", len(got), err)
	}
	if err := os.WriteFile(path, append(data, partial...), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err = ReadFileSink(dir); err != nil || len(got) != 3 || got[2].N != 3 {
		t.Fatalf("got %+v, err %v; want 3 deliveries", got, err)
	}
	if err := os.WriteFile(path, append(data, "{garbage}\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err = ReadFileSink(dir); err == nil {
		t.Fatal("a malformed complete line was not reported")
	}
	if got, err := ReadFileSink(filepath.Join(dir, "missing")); err != nil || len(got) != 0 {
		t.Errorf("missing dir: %v, %v", got, err)
	}
}
