// Package loadgen pushes load at a running sluice agent and checks what
// came out of its sinks. It backs "sluice bench" and the reliability suite.
//
//	rep, err := loadgen.Run(ctx, loadgen.Config{
//		URL:      "http://127.0.0.1:7101", // or "unix:/run/sluice/sluice.sock"
//		Mode:     loadgen.ModeNDJSON,
//		Batch:    100,
//		Duration: 10 * time.Second,
//		Verify:   true,
//	})
//	rep.WriteText(os.Stdout)
//	got, err := loadgen.ReadFileSink("/var/lib/sluice/out")
//	v := loadgen.Verify(rep.AckedIDs, loadgen.FilterRun(got, rep.RunID))
//
// # Load
//
// Every connection has one request in flight. Closed loop (Rate 0): a
// connection sends its next request as soon as the previous one was
// answered, so the run measures the highest rate the agent sustains. Open
// loop (Rate > 0): request i of a global schedule is due at start + i ×
// Batch/Rate and goes out on connection i mod Connections; a late request
// leaves at once and its latency counts from the time it was due, so
// queueing in front of a slow agent shows up in the percentiles instead of
// silently lowering the rate (coordinated omission). Requests that are
// still not sent Grace after the end of the run are counted as Missed.
//
// Latency is recorded per connection in a lock-free log-bucketed
// Histogram (relative error ≤ HistogramError, 0.4%) and merged for the
// report and the progress line; it covers acknowledged requests only.
// Failed requests are counted by "<status> <code>" from the JSON error
// body, or "transport <kind>" when no reply came. There are no retries: a
// retried push would be a second push.
//
// # Messages and verification
//
// Keys are k0 ... k<Keys-1>; key i goes to topic i mod Topics, and every
// key is owned by one connection, so the pushes of a key are sequential
// and their order is defined. Each value is JSON text that names the run,
// the key and the key's sequence number n (1, 2, ...), padded to Size:
//
//	{"run":"3f9a0c1d2e4b5a69","key":"k7","n":123,"pad":"xxxx"}
//
// In json mode the value is sent as a JSON string holding that text. With
// Config.Verify the report lists every acknowledged id with its topic, key
// and n (Report.AckedIDs). ReadFileSink and ReadKafka read a sink's
// deliveries back, and Verify reports lost, duplicate, out-of-order and
// unexpected (never acknowledged) messages.
package loadgen
