package sink

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Header is one record header. Value bytes are kept exactly.
type Header struct {
	Key   string
	Value []byte
}

// IDHeader is the header every record sent upstream carries: the message's
// sluice id, unique forever for the spool that accepted it.
const IDHeader = "sluice-id"

// ValidTopic reports whether t is a valid topic name. sluice uses Kafka's
// rule for every sink: 1 to 249 of [a-zA-Z0-9._-], and not "." or "..".
func ValidTopic(t string) bool {
	if t == "" || len(t) > 249 || t == "." || t == ".." {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// NoPartition in Message.Partition means "let the sink choose".
const NoPartition int32 = -1

// Message is one message handed to a sink.
//
// The byte slices may share memory with other messages of the same batch and
// must not be modified or retained after Write returns.
type Message struct {
	// ID is the sluice id. Sinks send it upstream (Kafka: header IDHeader,
	// file/stdout: field "id") so consumers can de-duplicate.
	ID      string
	Topic   string
	Key     []byte // nil = no key
	Value   []byte
	Headers []Header
	// Time is when the message was pushed to sluice.
	Time time.Time
	// Partition is an explicit partition requested at push time, or
	// NoPartition. Sinks without partitions ignore it.
	Partition int32

	// Delivery report, set by sinks that know it on success (Kafka);
	// others leave Delivered false.
	Delivered       bool
	DeliveredPart   int32
	DeliveredOffset int64
}

// Sink delivers batches of messages upstream. A Sink is used by one
// forwarder goroutine at a time, except Close, which may be called
// concurrently with a blocked Write to abort it.
//
// Error contract (the forwarder acts on it):
//   - nil: every message was acknowledged upstream (Kafka: by all in-sync
//     replicas). The forwarder advances its cursor past the batch.
//   - an error marked Permanent: the batch as a whole can never succeed
//     (a message in it is too large, invalid, ...). The forwarder splits the
//     batch and retries the halves until the single offending message is
//     found; only that one goes to the dead-letter log.
//   - a *BatchError: per-message outcome; see BatchError.
//   - any other error: transient (network, timeout, leader election,
//     authentication). The forwarder retries the same batch forever with
//     capped exponential backoff; nothing is dropped.
//
// A Write may deliver messages upstream even when it returns an error
// (a timed-out request can still land): delivery is at-least-once and
// consumers de-duplicate by IDHeader.
type Sink interface {
	// Write sends msgs upstream and returns when they are acknowledged or
	// the attempt failed. It honours ctx cancellation.
	Write(ctx context.Context, msgs []Message) error
	// Close releases the sink's resources. It returns when ctx is done at
	// the latest. Close is idempotent.
	Close(ctx context.Context) error
}

// BatchError reports per-message results of a Write. Errs has one entry per
// message of the batch: nil means delivered; an error marked Permanent is
// definitely about that message alone (the forwarder dead-letters it without
// splitting further); any other error is transient and the message is
// retried.
type BatchError struct {
	Errs []error
}

func (e *BatchError) Error() string {
	failed, first := 0, error(nil)
	for _, err := range e.Errs {
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	return fmt.Sprintf("%d of %d messages failed: %v", failed, len(e.Errs), first)
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that retrying the same input cannot fix.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked
// Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Reason is a short machine-readable cause for metrics and logs; sinks may
// wrap errors with one via WithReason.
type reasonError struct {
	reason string
	err    error
}

func (e reasonError) Error() string { return e.err.Error() }
func (e reasonError) Unwrap() error { return e.err }

// WithReason attaches a short label (e.g. "network", "auth",
// "leader_not_available", "too_large") used as a metric label for retries
// and dead letters.
func WithReason(reason string, err error) error {
	if err == nil {
		return nil
	}
	return reasonError{reason, err}
}

// Reason returns the label attached with WithReason, or "other".
func Reason(err error) string {
	var r reasonError
	if errors.As(err, &r) {
		return r.reason
	}
	return "other"
}
