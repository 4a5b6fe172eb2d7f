package agent

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// deadLetteringQueue starts an agent whose topic orders goes to queue q
// alone, and a consumer that leases the first message and lets the lease
// run out: q dead-letters it (max_attempts 1).
func deadLetteringQueue(t *testing.T) *testAgent {
	dir := t.TempDir()
	ta := startAgent(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q", Topics: []string{"orders"}, MaxAttempts: 1, Visibility: time.Second}))
	go func() {
		for i := 0; i < 200; i++ {
			if len(qcall(t, ta.url, "q", "pull", `{"max":1,"wait":"1s"}`).Messages) == 1 {
				return
			}
		}
	}()
	return ta
}

// With Sluice-Ack: delivered a REST Proxy reply tells the truth about
// each record. A record whose only target is a local queue and that the
// queue dead-letters (max_attempts) must not be answered as produced.
func TestRestProxyDeliveredQueueDeadLetterV3(t *testing.T) {
	ta := deadLetteringQueue(t)
	r := do(t, "POST", ta.url+"/v3/clusters/sluice/topics/orders/records", "application/json",
		[]byte(`{"value":{"type":"STRING","data":"x"}}`), map[string]string{"Sluice-Ack": "delivered", "Sluice-Timeout": "15s"})
	id := r.header.Get("Sluice-Ids")
	st := getStatus(t, ta, id)
	t.Logf("reply %d %s; status %+v", r.status, r.raw, st)
	if st.Status != "failed" {
		t.Fatalf("record not dead-lettered (status %s): test setup", st.Status)
	}
	if r.status == 200 {
		t.Fatalf("dead-lettered record answered 200: %s", r.raw)
	}
}

func TestRestProxyDeliveredQueueDeadLetterV2(t *testing.T) {
	ta := deadLetteringQueue(t)
	r := do(t, "POST", ta.url+"/topics/orders", rpV2JSON, []byte(`{"records":[{"value":1}]}`),
		map[string]string{"Sluice-Ack": "delivered", "Sluice-Timeout": "15s"})
	ids := strings.Split(r.header.Get("Sluice-Ids"), ",")
	st := getStatus(t, ta, ids[0])
	t.Logf("reply %d %s; status %+v", r.status, r.raw, st)
	if st.Status != "failed" {
		t.Fatalf("record not dead-lettered (status %s): test setup", st.Status)
	}
	var out v2Response
	if err := json.Unmarshal(r.raw, &out); err != nil || len(out.Offsets) != 1 {
		t.Fatalf("reply %d %s", r.status, r.raw)
	}
	if out.Offsets[0].ErrorCode == nil {
		t.Fatalf("dead-lettered record answered as produced: %s", r.raw)
	}
}
