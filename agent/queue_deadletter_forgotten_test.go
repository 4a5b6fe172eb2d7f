package agent

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// A queue message dead-lettered (here: expired past MAX_AGE) whose dead
// letter the bounded index forgets, or the dead-letter log discards at its
// cap, never reads delivered: it reads unknown (deadletter_forgotten), also
// after a restart, as a sink's does (TestForgottenDeadLetterIsNeverDelivered).
// Before, the queue's status never asked the watermark, and the log's
// discards did not raise a queue's.
func TestQueueForgottenDeadLetterIsNeverDelivered(t *testing.T) {
	for _, tc := range []struct {
		name  string
		index int // dlIndexSize: 3 forgets by eviction, the default only by the log's cap
	}{{"index", 3}, {"log cap", dlIndexSize}} {
		t.Run(tc.name, func(t *testing.T) {
			old := dlIndexSize
			dlIndexSize = tc.index
			t.Cleanup(func() { dlIndexSize = old })
			dir := t.TempDir()
			open := func() Options {
				// Room for about four 10 KB dead letters: older ones are discarded.
				dl, err := spool.Open(filepath.Join(dir, "deadletter"), spool.Options{Logger: quiet(), FullPolicy: spool.DropOldest,
					SegmentBytes: 8 << 10, MaxBytes: 48 << 10})
				if err != nil {
					t.Fatal(err)
				}
				return withQueues(t, dir, Options{DeadLetter: dl}, QueueSpec{Name: "q", MaxAge: time.Nanosecond})
			}
			ta := startAgent(t, dir, open())
			var ids []string
			for i := range 8 {
				id := do(t, "POST", ta.url+"/v1/topics/t", "", bytes.Repeat([]byte{byte('a' + i)}, 10000), nil).ids[0]
				ids = append(ids, id)
				waitFor(t, "dead-lettered", func() bool { return getStatus(t, ta, id).Sinks["q"].Status != "pending" })
			}
			check := func(when string) {
				t.Helper()
				unknown := 0
				for i, id := range ids {
					st := getStatus(t, ta, id).Sinks["q"]
					switch st.Status {
					case "delivered":
						t.Fatalf("%s: message %d was dead-lettered (expired), never acknowledged, and reads %+v", when, i, st)
					case "unknown":
						if st.Reason != "deadletter_forgotten" {
							t.Fatalf("%s: message %d: %+v", when, i, st)
						}
						unknown++
					}
				}
				if unknown == 0 {
					t.Fatalf("%s: no message reads unknown: the test forgot no dead letter", when)
				}
			}
			if tc.index == 3 {
				check("running")
			}
			ta.stop(t)
			ta = startAgent(t, dir, open())
			check("restarted")
		})
	}
}
