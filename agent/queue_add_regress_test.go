package agent

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/spool"
)

// add is handed records whose Data lie in one buffer (as with
// ReuseBuffer), then the buffer is overwritten as the next Read would:
// nothing add kept (entries, their raw record and decoded message, the
// ordered-key map, dead-letter candidates: corrupt, expired, max_attempts)
// may change.
func TestQueueAddKeepsNothingOfTheReadBuffer(t *testing.T) {
	dir := t.TempDir()
	ta := startAgent(t, dir, withQueues(t, dir, Options{}, QueueSpec{Name: "q", Ordered: true, MaxAge: time.Hour, MaxAttempts: 3}))
	defer ta.stop(t)
	q := ta.a.queues[0]
	const base = 1 << 40 // far above the real spool's sequences
	now := time.Now().UnixNano()
	var buf []byte
	var offs [][2]int
	var want [][]byte
	for i := 0; i < 6; i++ {
		m := Msg{Time: now, Partition: -1, Topic: fmt.Sprintf("topic%d", i), Key: []byte(fmt.Sprintf("key%d", i%2)),
			Sinks: []string{"q"}, Headers: []sink.Header{{Key: fmt.Sprintf("h%d", i), Value: []byte(fmt.Sprintf("hv%d", i))}},
			Value: []byte(fmt.Sprintf(`{"v":%d}`, i))}
		switch i {
		case 3:
			m.Time = now - 2*int64(time.Hour) // expired
		}
		rec := appendMsg(nil, &m)
		offs = append(offs, [2]int{len(buf), len(buf) + len(rec)})
		buf = append(buf, rec...)
		want = append(want, rec)
	}
	buf = append(buf, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3) // a corrupt record's bytes
	var recs []spool.Record
	for i, o := range offs {
		recs = append(recs, spool.Record{ID: spool.ID{Epoch: 1, Seq: base + uint64(i)}, Data: buf[o[0]:o[1]:o[1]]})
	}
	recs = append(recs, spool.Record{ID: spool.ID{Epoch: 1, Seq: base + 6}, Data: buf[len(buf)-7:], Corrupt: true})
	q.mu.Lock()
	q.restoredAttempts[base+4] = attemptRec{seq: base + 4, epoch: 1, attempt: 3} // max_attempts at add
	q.mu.Unlock()
	q.add(recs)
	for i := range buf {
		buf[i] = 'X'
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := 0; i < 7; i++ {
		e := q.entries[base+uint64(i)]
		if e == nil {
			if i == 3 || i == 4 || i == 6 {
				t.Logf("seq +%d: already dead-lettered by maintain (not checked)", i)
			} else {
				t.Errorf("seq +%d: no entry", i)
			}
			continue
		}
		if i == 6 {
			if !bytes.Equal(e.raw, []byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3}) || e.reason != "corrupt" {
				t.Errorf("corrupt record kept as %q (%s)", e.raw, e.reason)
			}
			continue
		}
		if !bytes.Equal(e.raw, want[i]) {
			t.Errorf("seq +%d: raw changed with the read buffer", i)
		}
		m := e.msg
		if m.Topic != fmt.Sprintf("topic%d", i) || string(m.Key) != fmt.Sprintf("key%d", i%2) || string(m.Value) != fmt.Sprintf(`{"v":%d}`, i) ||
			len(m.Headers) != 1 || m.Headers[0].Key != fmt.Sprintf("h%d", i) || string(m.Headers[0].Value) != fmt.Sprintf("hv%d", i) || len(m.Sinks) != 1 || m.Sinks[0] != "q" {
			t.Errorf("seq +%d: message changed with the read buffer: %+v", i, m)
		}
	}
	if e := q.entries[base+3]; e != nil && e.reason != "expired" {
		t.Errorf("expired entry: %+v", e)
	}
	if e := q.entries[base+4]; e != nil && e.reason != "max_attempts" {
		t.Errorf("max_attempts entry: %+v", e)
	}
	for k := range q.keys {
		if k != "key0" && k != "key1" {
			t.Errorf("ordered-key map key %q changed with the read buffer", k)
		}
	}
	// Let the test's entries go before the agent stops (they are not in
	// the spool).
	for i := 0; i < 7; i++ {
		if e := q.entries[base+uint64(i)]; e != nil && e.state != qDying {
			q.resolveLocked(e)
		}
	}
	q.dying = nil
}
