package stdout_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/file"
	"github.com/sluiceio/sluice/sink/sinktest"
	"github.com/sluiceio/sluice/sink/stdout"
)

func readBuffer(t *testing.T, buf *bytes.Buffer) []sink.Message {
	t.Helper()
	recs, err := file.ReadRecords(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]sink.Message, len(recs))
	for i, r := range recs {
		msgs[i] = r.Message()
	}
	return msgs
}

func TestConformance(t *testing.T) {
	var buf *bytes.Buffer
	sinktest.Run(t, sinktest.Harness{
		New: func(t *testing.T) sink.Sink {
			buf = &bytes.Buffer{}
			return stdout.New(stdout.Options{Out: buf})
		},
		Read: func(t *testing.T) []sink.Message { return readBuffer(t, buf) },
		Caps: sinktest.Caps{EmptyKey: true, Partition: true, TimePrecision: time.Nanosecond},
	})
}

// writerFunc is an io.Writer made of a function.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestOneWritePerBatch(t *testing.T) {
	var calls int
	var out bytes.Buffer
	w := stdout.New(stdout.Options{Out: writerFunc(func(p []byte) (int, error) {
		calls++
		return out.Write(p)
	})})
	msgs := sinktest.Generate("m", 100, 100)
	if err := w.Write(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("%d writes for one batch, want 1", calls)
	}
	if !bytes.Equal(out.Bytes(), file.AppendBatch(nil, msgs)) {
		t.Fatal("output differs from file.AppendBatch")
	}
}

// TestFailedWriteIsTransient: a write that fails part-way is retried by the
// forwarder; the retried lines start on a line of their own, and the
// fragment is the only unparsable line.
func TestFailedWriteIsTransient(t *testing.T) {
	var out bytes.Buffer
	failNext := true
	w := stdout.New(stdout.Options{Out: writerFunc(func(p []byte) (int, error) {
		if failNext {
			failNext = false
			n, _ := out.Write(p[:len(p)/2+1])
			return n, errors.New("broken pipe")
		}
		return out.Write(p)
	})})
	msgs := sinktest.Generate("m", 10, 100)
	err := w.Write(context.Background(), msgs)
	if err == nil || sink.IsPermanent(err) || sink.Reason(err) != "io" {
		t.Fatalf("failed write: %v (permanent %v, reason %q), want transient io", err, sink.IsPermanent(err), sink.Reason(err))
	}
	if err := w.Write(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte("\n")), []byte("\n"))
	var bad int
	var got []sink.Message
	for _, l := range lines {
		r, err := file.ParseLine(l)
		if err != nil {
			bad++
			continue
		}
		got = append(got, r.Message())
	}
	if bad != 1 {
		t.Fatalf("%d unparsable lines, want 1 (the fragment)", bad)
	}
	// The complete lines of the failed attempt come first, then the retry.
	retry := got[len(got)-len(msgs):]
	if err := sinktest.Diff(sinktest.Caps{EmptyKey: true, TimePrecision: time.Nanosecond}, msgs, retry); err != nil {
		t.Fatal(err)
	}
}

func TestShortWriteIsAnError(t *testing.T) {
	w := stdout.New(stdout.Options{Out: writerFunc(func(p []byte) (int, error) { return len(p) - 1, nil })})
	if err := w.Write(context.Background(), sinktest.Generate("m", 1, 10)); err == nil {
		t.Fatal("short write reported as success")
	}
}

func TestDefaultIsStdout(t *testing.T) {
	r, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = pw
	w := stdout.New(stdout.Options{})
	os.Stdout = saved
	msgs := sinktest.Generate("m", 3, 10)
	if err := w.Write(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	recs, err := file.ReadRecords(r)
	if err != nil || len(recs) != 3 || recs[2].ID != "m2" {
		t.Fatalf("read back %d records, %v", len(recs), err)
	}
}

func BenchmarkWrite(b *testing.B) {
	var n int64
	w := stdout.New(stdout.Options{Out: writerFunc(func(p []byte) (int, error) { n += int64(len(p)); return len(p), nil })})
	msgs := sinktest.Generate("bench-", 1000, 1024)
	var payload int64
	for _, m := range msgs {
		payload += int64(len(m.Value))
	}
	b.SetBytes(payload)
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Write(context.Background(), msgs); err != nil {
			b.Fatal(err)
		}
	}
}
