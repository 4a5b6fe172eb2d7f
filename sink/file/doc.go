// Package file is the file sink: it appends batches as NDJSON to rotating
// files in a directory, and owns the NDJSON record format that the stdout
// sink shares (AppendRecord, AppendBatch; ParseLine, ReadRecords and ReadDir
// read it back for tests and tools).
//
//	w, err := file.New(file.Options{Dir: "/var/lib/sluice/out"})
//	...
//	err = w.Write(ctx, msgs) // nil: the batch is fsynced
//	...
//	err = w.Close(ctx)
//
// # Record format
//
// One JSON object per message, one line each, terminated by "\n". Fields,
// always in this order:
//
//	id          string  the sluice id (sink.Message.ID)
//	topic       string
//	key         string  the key when it is valid UTF-8; absent when the key is nil
//	key_b64     string  instead of key when it is not valid UTF-8 (base64, standard alphabet, padded)
//	headers     object  header name → value, in message order; absent when there are none
//	headers_b64 object  instead of headers when any header value is not valid UTF-8:
//	                    then every value in it is base64 (standard, padded)
//	value       any     see below
//	value_b64   string  instead of value when the value is not valid UTF-8 (base64, standard, padded)
//	timestamp   string  push time, RFC 3339 with nanoseconds, UTC ("2026-01-02T03:04:05.123456789Z")
//	partition   number  only when the message requested an explicit partition
//
// value is the message bytes themselves when they are a JSON document that
// is valid UTF-8, is not a JSON string, has no leading or trailing
// whitespace, contains no CR or LF byte, nests arrays and objects at most
// 64 deep and has no number over 1,000 characters or out of a float64's
// range (jsonenc.Portable): {"b":1,"a":[1.50,"\u00e9"]} is written exactly
// so, byte for byte. Otherwise, when the bytes are valid UTF-8, value is a
// JSON string holding them as text. So a string-typed value always means "these
// characters are the message", and any other type means "this JSON text
// is the message": the message "abc" (with quotes) is written as
// "\"abc\"", the message abc as "abc". An empty value is "". Message bytes
// are recovered exactly in every case.
//
// id, topic and header names are expected to be UTF-8 (sluice validates them
// at ingest); an invalid byte in them is written as U+FFFD. Repeated header
// names are kept, in order, as repeated object members (most JSON tools keep
// only the last; ParseLine keeps all). Strings escape '"', '\\', control
// characters, U+2028 and U+2029, nothing else.
//
// # Files
//
// The current file is Dir/sluice-<UTC creation time>-<seq>.ndjson, for
// example sluice-20260102T030405Z-000007.ndjson. seq grows by one per file
// and continues after the highest number already in Dir, so names sort by
// age and a finished file is never written again. A batch is never split
// between files: rotation happens before a batch that would take the file
// past RotateBytes, or once the file is RotateAge old. At start-up (the
// first Write) a torn last line in the newest existing file, left by a crash
// during a write, is cut off; that batch was not acknowledged and is written
// again to a new file. One Writer per directory.
//
// # Durability and failures
//
// Write encodes the batch into one buffer, appends it with one write and
// fsyncs the file (and the directory when the file is new) before returning
// nil. Every failure (directory missing and not creatable, path is a regular
// file, ENOSPC, EIO) is transient, wrapped with sink.WithReason("io", ...):
// the forwarder retries the batch. After a failed write or fsync the file
// offset is not trusted: before the next attempt the file is truncated back
// to the end of the last acknowledged batch and fsynced, and the retry is
// appended there, in the same file. A retried batch therefore appears once,
// whole, never after a partial copy of itself. If another program deletes or
// renames the current file, the next batch goes to a new file instead of
// into the unlinked one. Files are created 0644 and directories 0755, minus
// the umask.
package file
