package loadgen

import (
	"fmt"
	"io"
	"strings"
)

// Acked is a message the agent acknowledged: the id from its 2xx reply,
// with the topic, key and per-key sequence number it was pushed with.
type Acked struct {
	ID    string `json:"id"`
	Topic string `json:"topic"`
	Key   string `json:"key"`
	N     int64  `json:"n"`
}

// Delivered is a message read back from a sink.
type Delivered struct {
	ID    string
	Topic string
	Key   string
	// Run and N come from the value (ParseValue); N is -1 when the value
	// is not one a load run writes.
	Run string
	N   int64
	// Partition and Offset locate the record in Kafka; -1 for the file
	// sink.
	Partition int32
	Offset    int64
}

// VerifyReport compares what the agent acknowledged with what a sink
// received.
type VerifyReport struct {
	// Acked is the number of distinct acknowledged ids; Delivered the
	// number of deliveries read (duplicates included); Unique the number
	// of distinct delivered ids.
	Acked     int `json:"acked"`
	Delivered int `json:"delivered"`
	Unique    int `json:"unique"`
	// Lost: acknowledged ids never delivered. Breaks "ack means durable"
	// and at-least-once.
	Lost int `json:"lost"`
	// Duplicates: deliveries of an id beyond its first. Allowed
	// (at-least-once); consumers de-duplicate by id.
	Duplicates int `json:"duplicates"`
	// OutOfOrder: first deliveries of an acknowledged message whose
	// sequence number is lower than the highest one already delivered for
	// its topic and key. Breaks "ordered per key". Keyless messages and
	// messages never acknowledged (an outcome-unknown push gives no order
	// promise) are not checked.
	OutOfOrder int `json:"out_of_order"`
	// Unexpected: delivered ids never acknowledged. Allowed: a push whose
	// reply was lost (timeout, crash) may still have been spooled.
	Unexpected int `json:"unexpected"`

	// Up to SampleIDs examples of each.
	LostIDs       []string `json:"lost_ids,omitempty"`
	DuplicateIDs  []string `json:"duplicate_ids,omitempty"`
	OutOfOrderIDs []string `json:"out_of_order_ids,omitempty"`
	UnexpectedIDs []string `json:"unexpected_ids,omitempty"`
}

// SampleIDs is the number of example ids a VerifyReport keeps per finding.
const SampleIDs = 10

// OK reports whether the guarantees held: nothing lost, nothing out of
// order.
func (v VerifyReport) OK() bool { return v.Lost == 0 && v.OutOfOrder == 0 }

func sample(ids []string, id string) []string {
	if len(ids) < SampleIDs {
		ids = append(ids, id)
	}
	return ids
}

// Verify checks delivered, in the order the sink received it, against
// acked.
func Verify(acked []Acked, delivered []Delivered) VerifyReport {
	var v VerifyReport
	byID := make(map[string]Acked, len(acked))
	for _, a := range acked {
		byID[a.ID] = a
	}
	v.Acked = len(byID)
	v.Delivered = len(delivered)

	type keyID struct{ topic, key string }
	seen := make(map[string]struct{}, len(delivered))
	highest := make(map[keyID]int64)
	for _, d := range delivered {
		if _, dup := seen[d.ID]; dup {
			v.Duplicates++
			v.DuplicateIDs = sample(v.DuplicateIDs, d.ID)
			continue
		}
		seen[d.ID] = struct{}{}
		a, ok := byID[d.ID]
		if !ok {
			v.Unexpected++
			v.UnexpectedIDs = sample(v.UnexpectedIDs, d.ID)
			continue
		}
		if a.Key == "" {
			continue
		}
		k := keyID{a.Topic, a.Key}
		if hi, ok := highest[k]; ok && a.N < hi {
			v.OutOfOrder++
			v.OutOfOrderIDs = sample(v.OutOfOrderIDs, d.ID)
			continue
		}
		highest[k] = a.N
	}
	v.Unique = len(seen)
	counted := make(map[string]struct{}, len(byID))
	for _, a := range acked {
		if _, ok := seen[a.ID]; ok {
			continue
		}
		if _, ok := counted[a.ID]; ok {
			continue
		}
		counted[a.ID] = struct{}{}
		v.Lost++
		v.LostIDs = sample(v.LostIDs, a.ID)
	}
	return v
}

// FilterRun keeps the deliveries of run runID (by the value's run field),
// so that a sink that also holds other runs can be verified.
func FilterRun(delivered []Delivered, runID string) []Delivered {
	var out []Delivered
	for _, d := range delivered {
		if d.Run == runID {
			out = append(out, d)
		}
	}
	return out
}

// WriteText writes the verify report for humans.
func (v VerifyReport) WriteText(w io.Writer) {
	verdict := "OK"
	if !v.OK() {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "verify      %s: %d acked, %d delivered (%d unique): %d lost, %d duplicates, %d out of order, %d unexpected\n",
		verdict, v.Acked, v.Delivered, v.Unique, v.Lost, v.Duplicates, v.OutOfOrder, v.Unexpected)
	for _, f := range []struct {
		name string
		ids  []string
	}{{"lost", v.LostIDs}, {"out of order", v.OutOfOrderIDs}, {"duplicate", v.DuplicateIDs}, {"unexpected", v.UnexpectedIDs}} {
		if len(f.ids) > 0 {
			fmt.Fprintf(w, "  %s e.g. %s\n", f.name, strings.Join(f.ids, " "))
		}
	}
}
