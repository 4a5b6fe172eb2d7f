// Package stdout is the stdout sink: it writes each batch as NDJSON lines,
// in the record format of package sink/file, to the process's standard
// output (or any io.Writer), for container log pipelines and debugging.
//
//	w := stdout.New(stdout.Options{})
//	err := w.Write(ctx, msgs)
//
// Write encodes the whole batch into one buffer and makes one write call;
// nil means the bytes were handed to the writer (for a pipe or terminal:
// accepted by the kernel, nothing is fsynced). A write error is transient
// (reason "io") and the forwarder retries the batch. When a failed write
// left a partial line behind, the next write starts with a newline so the
// retried lines stay intact; the fragment remains as one unparsable line
// that consumers must skip. A write blocked in the kernel (a stalled log
// reader) cannot be interrupted by ctx or Close.
//
// Sinks writing to os.Stdout share one lock so their batches never
// interleave; nothing else in the process should write to stdout (the agent
// logs to stderr). Close does not close the writer.
package stdout
