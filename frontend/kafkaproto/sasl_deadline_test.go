package kafkaproto

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// saslAuthV2Frame is a SaslAuthenticate v2 frame (flexible), client id
// "test", whose body is an empty auth message and then tags: a tag
// section claiming count tags, followed by the raw bytes rest.
func saslAuthV2Frame(count uint64, rest []byte) []byte {
	b := make([]byte, 4, 64+len(rest))
	b = binary.BigEndian.AppendUint16(b, keySaslAuthenticate)
	b = binary.BigEndian.AppendUint16(b, 2)
	b = binary.BigEndian.AppendUint32(b, 1) // correlation id
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "test"...)
	b = append(b, 0)                   // header tags: none
	b = append(b, 1)                   // compact bytes: empty
	b = binary.AppendUvarint(b, count) // body tag count
	b = append(b, rest...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// answeredOrClosedWithin reports whether, within d, the server either
// sends something or closes the connection.
func answeredOrClosedWithin(r *rawConn, d time.Duration) bool {
	data, closed := r.wait(d)
	return data || closed
}

// TestClaimedTagCountsDoNotSpin: a flexible request whose tag section
// claims 2^32-1 tags in a few bytes is answered or closed at once. kmsg
// before v1.15.1 looped over the claimed count after the bytes ran out
// (about 86 s of CPU a frame, 14 min under the race detector), beyond any
// deadline: a SaslAuthenticate before authentication, or, with no token
// set, any flexible request (here Metadata v12).
func TestClaimedTagCountsDoNotSpin(t *testing.T) {
	const claimed = 1<<32 - 1
	e := start(t, t.TempDir(), Options{Token: testToken})
	r := dial(t, e.srv.Addr())
	r.send(saslAuthV2Frame(claimed, nil))
	if !answeredOrClosedWithin(r, 30*time.Second) {
		t.Error("a SaslAuthenticate claiming 2^32-1 tags, before authentication: no answer")
	}

	open := start(t, t.TempDir(), Options{})
	r = dial(t, open.srv.Addr())
	b := make([]byte, 4, 64)
	b = binary.BigEndian.AppendUint16(b, keyMetadata)
	b = binary.BigEndian.AppendUint16(b, 12)
	b = binary.BigEndian.AppendUint32(b, 1) // correlation id
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "test"...)
	b = append(b, 0)       // header tags: none
	b = append(b, 0, 1, 0) // topics: null; allow auto-creation; no authorized operations
	b = binary.AppendUvarint(b, claimed)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	r.send(b)
	if !answeredOrClosedWithin(r, 30*time.Second) {
		t.Error("a Metadata v12 claiming 2^32-1 tags, no token: no answer")
	}
}

// TestSASLDeadlinesBeforeAndAfterLogin: after authentication (v1 and the
// bare v0 path) the next read waits IdleTimeout, not authBy; a frame body
// that stalls after authentication is still cut at ReadTimeout; without a
// token an idle connection outlives ReadTimeout and a stalled body does
// not.
func TestSASLDeadlinesBeforeAndAfterLogin(t *testing.T) {
	const rt = time.Second
	stall := func(r *rawConn) { // a Produce frame's size and head only
		b := binary.BigEndian.AppendUint32(nil, 1000)
		b = binary.BigEndian.AppendUint16(b, keyProduce)
		b = binary.BigEndian.AppendUint16(b, 7)
		r.send(b)
	}
	e := start(t, t.TempDir(), Options{Token: testToken, ReadTimeout: rt, IdleTimeout: time.Hour})
	v1 := authedConn(t, e.srv.Addr())
	v0 := dial(t, e.srv.Addr())
	v0.request(&kmsg.SASLHandshakeRequest{Version: 0, Mechanism: "PLAIN"}, kmsg.NewPtrSASLHandshakeResponse())
	v0.send(binary.BigEndian.AppendUint32(nil, uint32(len("\x00u\x00"+testToken))))
	v0.send([]byte("\x00u\x00" + testToken))
	if b, err := v0.readFrame(); err != nil || len(b) != 0 {
		t.Fatalf("bare PLAIN: %v %v", b, err)
	}
	time.Sleep(3 * rt) // past authBy and ReadTimeout
	for name, r := range map[string]*rawConn{"v1": v1, "v0": v0} {
		if p := r.produce("t", 0, recordBatch(-1, -1, 0, 0, name)); p.ErrorCode != 0 {
			t.Errorf("%s: produce after idling past ReadTimeout: %d", name, p.ErrorCode)
		}
		stall(r)
		if !closedWithin(r, 5*time.Second) {
			t.Errorf("%s: stalled body after authentication not cut", name)
		}
	}
	pre := dial(t, e.srv.Addr())
	pre.send(binary.BigEndian.AppendUint32(nil, 100)) // an ApiVersions that never comes
	pre.send([]byte{0, keyApiVersions, 0, 0})
	if !closedWithin(pre, 5*time.Second) {
		t.Error("stalled pre-auth body not cut at authBy")
	}

	n := start(t, t.TempDir(), Options{ReadTimeout: rt, IdleTimeout: time.Hour})
	r := dial(t, n.srv.Addr())
	time.Sleep(3 * rt)
	if p := r.produce("t", 0, recordBatch(-1, -1, 0, 0, "x")); p.ErrorCode != 0 {
		t.Errorf("no token: produce after idling: %d", p.ErrorCode)
	}
	stall(r)
	if !closedWithin(r, 5*time.Second) {
		t.Error("no token: stalled body not cut")
	}
	if got := e.srv.m.records.Get(); got != 2 {
		t.Errorf("records spooled with token: %v, want 2", got)
	}
}
