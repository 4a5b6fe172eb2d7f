package kafka

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	"github.com/sluiceio/sluice/internal/kcattest"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluiceio/sluice/sink"
)

type kcatRecord = kcattest.Record

func requireKcat(t *testing.T) string { return kcattest.Require(t) }

func kcatConsume(t *testing.T, kcat, addr, topic string, extra ...string) []kcatRecord {
	return kcattest.Consume(t, kcat, addr, topic, extra...)
}

func runKcat(t *testing.T, kcat string, stdin []byte, args ...string) []byte {
	return kcattest.Run(t, kcat, stdin, args...)
}

// kcatIDs maps each record's sluice-id header to the record.
func kcatIDs(t *testing.T, recs []kcatRecord) map[string]kcatRecord {
	t.Helper()
	out := make(map[string]kcatRecord)
	for _, r := range recs {
		var ids []string
		for _, h := range strings.Split(r.Headers, ",") {
			if v, ok := strings.CutPrefix(h, sink.IDHeader+"="); ok {
				ids = append(ids, v)
			}
		}
		if len(ids) != 1 {
			t.Fatalf("record %s[%d]@%d: headers %q, want one %s", r.Topic, r.Partition, r.Offset, r.Headers, sink.IDHeader)
		}
		out[ids[0]] = r
	}
	return out
}

// Every message written comes back through librdkafka byte for byte, with
// its headers, sluice-id and the partition the delivery report named.
func TestKcatReadsWhatWeWrite(t *testing.T) {
	kcat := requireKcat(t)
	_, addr := newCluster(t, kfake.SeedTopics(6, "kc"))
	w := newWriter(t, addr, Options{})

	msgs := testMsgs("kc", "kc", 120, 40)
	for i := range msgs {
		if i%3 == 0 {
			v := make([]byte, 64+i)
			rand.Read(v)
			msgs[i].Value = v // binary: NULs, newlines, '|', invalid UTF-8
		}
		if i%10 == 0 {
			msgs[i].Key = nil
		}
	}
	msgs[5].Headers = append(msgs[5].Headers, sink.Header{Key: sink.IDHeader, Value: []byte("chained-5")})
	mustWrite(t, w, msgs)

	recs := kcatIDs(t, kcatConsume(t, kcat, addr, "kc"))
	if len(recs) != len(msgs) {
		t.Fatalf("kcat read %d records, want %d", len(recs), len(msgs))
	}
	for i, m := range msgs {
		id := m.ID
		if i == 5 {
			id = "chained-5"
		}
		r, ok := recs[id]
		if !ok {
			t.Fatalf("%s missing", id)
		}
		if r.Topic != "kc" || r.Partition != m.DeliveredPart || r.Offset != m.DeliveredOffset {
			t.Errorf("%s: kcat %s[%d]@%d, delivery report [%d]@%d", id, r.Topic, r.Partition, r.Offset, m.DeliveredPart, m.DeliveredOffset)
		}
		if (r.Key == nil) != (m.Key == nil) || !bytes.Equal(r.Key, m.Key) {
			t.Errorf("%s: key %q, want %q", id, r.Key, m.Key)
		}
		if !bytes.Equal(r.Value, m.Value) {
			t.Errorf("%s: value differs (%d bytes, want %d)", id, len(r.Value), len(m.Value))
		}
		if want := fmt.Sprintf("h=%d", i); !strings.HasPrefix(r.Headers, want+",") {
			t.Errorf("%s: headers %q, want prefix %q", id, r.Headers, want)
		}
	}
}

// The default partitioner agrees with librdkafka's murmur2_random (the
// Java client's): kcat produces the same keys into another topic, and each
// key lands on the same partition number in both.
func TestKcatMurmur2Agreement(t *testing.T) {
	kcat := requireKcat(t)
	_, addr := newCluster(t, kfake.SeedTopics(6, "ours", "theirs"))
	w := newWriter(t, addr, Options{})

	const n = 200
	keys := make([]string, n)
	msgs := make([]sink.Message, n)
	var input bytes.Buffer
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%d-%x", i, i*7919)
		msgs[i] = sink.Message{ID: fmt.Sprint(i), Topic: "ours", Key: []byte(keys[i]), Value: []byte("v"), Partition: sink.NoPartition}
		fmt.Fprintf(&input, "%s\t%d\n", keys[i], i)
	}
	mustWrite(t, w, msgs)
	runKcat(t, kcat, input.Bytes(), "-P", "-b", addr, "-t", "theirs", "-K", "\t", "-X", "partitioner=murmur2_random")

	part := func(topic string) map[string]int32 {
		m := make(map[string]int32)
		for _, r := range kcatConsume(t, kcat, addr, topic) {
			m[string(r.Key)] = r.Partition
		}
		return m
	}
	ours, theirs := part("ours"), part("theirs")
	if len(ours) != n || len(theirs) != n {
		t.Fatalf("read %d and %d distinct keys, want %d", len(ours), len(theirs), n)
	}
	used := map[int32]bool{}
	for _, k := range keys {
		if ours[k] != theirs[k] {
			t.Errorf("key %q: sluice partition %d, librdkafka murmur2_random %d", k, ours[k], theirs[k])
		}
		used[ours[k]] = true
	}
	if len(used) != 6 {
		t.Errorf("keys spread over %d of 6 partitions", len(used))
	}
}

// Every codec: librdkafka decompresses what we compress.
func TestKcatCompression(t *testing.T) {
	kcat := requireKcat(t)
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			_, addr := newCluster(t, kfake.SeedTopics(2, "z"))
			w := newWriter(t, addr, Options{Compression: codec})
			msgs := testMsgs("z", codec, 50, 5)
			for i := range msgs {
				msgs[i].Value = bytes.Repeat([]byte(msgs[i].ID+" "), 40)
			}
			mustWrite(t, w, msgs)
			recs := kcatIDs(t, kcatConsume(t, kcat, addr, "z"))
			for _, m := range msgs {
				if r, ok := recs[m.ID]; !ok || !bytes.Equal(r.Value, m.Value) {
					t.Errorf("%s: not read back intact by kcat", m.ID)
				}
			}
		})
	}
}
