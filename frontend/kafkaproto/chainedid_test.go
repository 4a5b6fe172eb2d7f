package kafkaproto

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluiceio/sluice/sink"
)

// headerBatch builds a magic-2 batch of one record with value v and the
// given headers.
func headerBatch(v string, hs ...kmsg.Header) []byte {
	rec := kmsg.Record{Value: []byte(v), Headers: hs}
	body := rec.AppendTo(nil)
	inner := body[1:] // AppendTo writes Length as given (0): recompute it
	recs := binary.AppendVarint(nil, int64(len(inner)))
	recs = append(recs, inner...)
	b := kmsg.RecordBatch{
		Magic: 2, FirstTimestamp: 1700000000000, MaxTimestamp: 1700000000000,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: 1, Records: recs,
	}
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint32(out[17:], crc32c(out[21:]))
	return out
}

func idHeader(v string) kmsg.Header {
	return kmsg.Header{Key: sink.IDHeader, Value: []byte(v)}
}

// TestChainedIDValidated: a record's sluice-id header becomes the
// message's id (chained agents), under the rule HTTP applies to "id": 1–128
// printable ASCII bytes, one per message. A batch with a record that breaks
// it gets INVALID_RECORD with the reason (HTTP answers 400); its
// neighbours are spooled, and a valid id is kept.
func TestChainedIDValidated(t *testing.T) {
	e := start(t, t.TempDir(), Options{Partitions: map[string]int32{"t": 6}})
	bad := []kmsg.Header{
		idHeader(""),
		idHeader("has space"),
		idHeader(strings.Repeat("a", 129)),
		idHeader("caf\xc3\xa9"),
	}
	req := produceReq("t", 0, -1, headerBatch("good", idHeader("upstream-7")))
	for i, h := range bad {
		addPartition(req, "t", int32(i+1), headerBatch("bad", h))
	}
	addPartition(req, "t", int32(len(bad)+1), headerBatch("two", idHeader("a"), idHeader("b")))
	req.Version = 8 // error messages

	c := dial(t, e.srv.Addr())
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	c.request(req, resp)
	for _, p := range resp.Topics[0].Partitions {
		want := kerr.InvalidRecord.Code
		if p.Partition == 0 {
			want = 0
		}
		if p.ErrorCode != want {
			t.Errorf("partition %d: %v, want %v", p.Partition, kerr.ErrorForCode(p.ErrorCode), kerr.ErrorForCode(want))
		}
		if want != 0 && (p.ErrorMessage == nil || !strings.Contains(*p.ErrorMessage, "sluice-id")) {
			t.Errorf("partition %d: error message %v does not name the sluice-id header", p.Partition, p.ErrorMessage)
		}
	}
	got := e.sink.wait(t, 1)
	if got[0].ID != "upstream-7" || string(got[0].Value) != "good" {
		t.Fatalf("spooled %q with id %q, want \"good\" with id \"upstream-7\"", got[0].Value, got[0].ID)
	}
	for _, h := range got[0].Headers {
		if h.Key == sink.IDHeader {
			t.Errorf("the sluice-id header stayed among the headers: %q", h.Value)
		}
	}
}
