package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/nofds"
	"github.com/sluiceio/sluice/spool"
)

// starvedForMoments runs pushes over kept-alive connections while the
// process's file descriptors are taken away again and again (appends,
// truncations, segment cycles and reads fail meanwhile), then checks that
// pushes recover, every acknowledged push is delivered and reads delivered,
// and nothing was noted lost.
func starvedForMoments(t *testing.T, so spool.Options) {
	dir := t.TempDir()
	mem := &memSink{}
	ta := startAgentSpool(t, dir, Options{Sinks: []SinkSpec{{Name: "mem", Sink: mem.sink()}}}, so)
	const workers = 4
	tr := &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	push := func(i, w int) (int, []string, error) {
		body := bytes.Repeat([]byte{'x'}, 300)
		body = append(body, fmt.Sprintf("-%d-%d", w, i)...)
		req, _ := http.NewRequest("POST", ta.url+"/v1/topics/t", bytes.NewReader(body))
		resp, err := cl.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var v struct {
			IDs []string `json:"ids"`
		}
		_ = json.Unmarshal(b, &v)
		return resp.StatusCode, v.IDs, nil
	}
	// Warm the connections.
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() { defer wg.Done(); push(-1, w) }()
	}
	wg.Wait()

	var mu sync.Mutex
	var acked []string
	codes := map[int]int{}
	var clientErrs atomic.Int64
	stop := make(chan struct{})
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				code, ids, err := push(i, w)
				mu.Lock()
				if err != nil {
					clientErrs.Add(1)
				} else {
					codes[code]++
					if code/100 == 2 {
						acked = append(acked, ids...)
					}
				}
				mu.Unlock()
				if err != nil || code/100 != 2 {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	for range 6 {
		time.Sleep(150 * time.Millisecond)
		restore := nofds.Starve(t)
		time.Sleep(250 * time.Millisecond)
		restore()
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	mu.Lock()
	t.Logf("codes %v, client errors %d, acked %d, spool %+v", codes, clientErrs.Load(), len(acked), ta.sp.Stats())
	mu.Unlock()
	if len(acked) == 0 {
		t.Fatal("setup: nothing acknowledged")
	}
	// Descriptors are back: pushes recover and the disk error clears.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		code, ids, err := push(0, 99)
		if err == nil && code/100 == 2 {
			acked = append(acked, ids...)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pushes after descriptors returned: %d %v", code, err)
		}
	}
	if d := ta.sp.Stats().DiskError; d != "" {
		t.Errorf("disk error after a push succeeded: %s", d)
	}
	delivered := func() int64 {
		got := map[string]bool{}
		for _, id := range mem.ids() {
			got[id] = true
		}
		n := int64(0)
		for _, id := range acked {
			if got[id] {
				n++
			}
		}
		return n
	}
	waitCount(t, "acknowledged pushes delivered", delivered, int64(len(acked)), func() string { return fmt.Sprintf("spool %+v", ta.sp.Stats()) })
	bad := 0
	for _, id := range acked {
		st := ta.a.status(id)
		if st.Status != "delivered" {
			if bad < 5 {
				t.Errorf("status of delivered %s: %+v", id, st)
			}
			bad++
		}
	}
	st := ta.sp.Stats()
	if st.LostRecords > 0 || st.Corruptions > 0 {
		t.Errorf("descriptors taken away for moments: %d records noted lost, %d corruptions; nothing was damaged", st.LostRecords, st.Corruptions)
	}
	if bad > 0 {
		t.Fatalf("%d acknowledged and delivered pushes do not read delivered", bad)
	}
}

func TestAgentWithoutDescriptorsForMomentsLosesNothingAlways(t *testing.T) {
	starvedForMoments(t, spool.Options{SegmentBytes: 8 << 10, CursorSyncInterval: 5 * time.Millisecond, TruncateSegments: 1, MaxBytes: 64 << 20})
}

func TestAgentWithoutDescriptorsForMomentsLosesNothingInterval(t *testing.T) {
	starvedForMoments(t, spool.Options{SegmentBytes: 8 << 10, CursorSyncInterval: 5 * time.Millisecond, TruncateSegments: 1, MaxBytes: 64 << 20,
		Sync: spool.SyncInterval, SyncInterval: 10 * time.Millisecond})
}

func TestAgentWithoutDescriptorsForMomentsLosesNothingNever(t *testing.T) {
	starvedForMoments(t, spool.Options{SegmentBytes: 8 << 10, CursorSyncInterval: 5 * time.Millisecond, TruncateSegments: 1, MaxBytes: 64 << 20,
		Sync: spool.SyncNever})
}
