// Package discard is a sink that acknowledges every batch at once and keeps
// nothing: a baseline for benchmarks of the spool and forwarders. It counts
// messages and batches for tests.
//
//	d := discard.New()
//	err := d.Write(ctx, msgs) // nil unless ctx is done or d is closed
//	n := d.Count()
package discard
