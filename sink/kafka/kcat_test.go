package kafka

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluiceio/sluice/sink"
)

// requireKcat returns the kcat binary, skipping the test when it is not
// installed, unless SLUICE_REQUIRE_KCAT=1 (CI), where it fails.
func requireKcat(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("SLUICE_REQUIRE_KCAT") == "1" {
			t.Fatalf("kcat not found and SLUICE_REQUIRE_KCAT=1: install it (apt-get install -y kcat)")
		}
		t.Skip("kcat not installed (apt-get install -y kcat); set SLUICE_REQUIRE_KCAT=1 to fail instead of skipping")
	}
	return path
}

// kcatRecord is one record as kcat printed it.
type kcatRecord struct {
	topic     string
	partition int32
	offset    int64
	key       []byte // nil for a null key
	value     []byte // nil for a null value
	headers   string // kcat's "k=v,k2=v2"
}

// kcatFormat frames each record with byte lengths so binary keys and
// values come back exactly: @@topic|partition|offset|keylen|valuelen|
// key value|headers\n (a null key or value has length -1).
const kcatFormat = "@@%t|%p|%o|%K|%S|%k%s|%h\n"

// kcatConsume reads topic from the beginning to its end with kcat.
func kcatConsume(t *testing.T, kcat, addr, topic string, extra ...string) []kcatRecord {
	t.Helper()
	args := append([]string{"-C", "-b", addr, "-t", topic, "-o", "beginning", "-e", "-q", "-f", kcatFormat}, extra...)
	out := runKcat(t, kcat, nil, args...)
	var recs []kcatRecord
	for len(out) > 0 {
		if !bytes.HasPrefix(out, []byte("@@")) {
			t.Fatalf("kcat output out of frame: %q", out)
		}
		out = out[2:]
		var f [5]string
		for i := range f {
			j := bytes.IndexByte(out, '|')
			if j < 0 {
				t.Fatalf("kcat output truncated")
			}
			f[i], out = string(out[:j]), out[j+1:]
		}
		r := kcatRecord{topic: f[0]}
		p, _ := strconv.ParseInt(f[1], 10, 32)
		r.partition = int32(p)
		r.offset, _ = strconv.ParseInt(f[2], 10, 64)
		kl, _ := strconv.Atoi(f[3])
		vl, _ := strconv.Atoi(f[4])
		if kl >= 0 {
			r.key, out = append([]byte{}, out[:kl]...), out[kl:]
		}
		if vl >= 0 {
			r.value, out = append([]byte{}, out[:vl]...), out[vl:]
		}
		if len(out) == 0 || out[0] != '|' {
			t.Fatalf("kcat output: no header separator")
		}
		j := bytes.IndexByte(out, '\n')
		r.headers, out = string(out[1:j]), out[j+1:]
		recs = append(recs, r)
	}
	return recs
}

func runKcat(t *testing.T, kcat string, stdin []byte, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// kcatIDs maps each record's sluice-id header to the record.
func kcatIDs(t *testing.T, recs []kcatRecord) map[string]kcatRecord {
	t.Helper()
	out := make(map[string]kcatRecord)
	for _, r := range recs {
		var ids []string
		for _, h := range strings.Split(r.headers, ",") {
			if v, ok := strings.CutPrefix(h, sink.IDHeader+"="); ok {
				ids = append(ids, v)
			}
		}
		if len(ids) != 1 {
			t.Fatalf("record %s[%d]@%d: headers %q, want one %s", r.topic, r.partition, r.offset, r.headers, sink.IDHeader)
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
		if r.topic != "kc" || r.partition != m.DeliveredPart || r.offset != m.DeliveredOffset {
			t.Errorf("%s: kcat %s[%d]@%d, delivery report [%d]@%d", id, r.topic, r.partition, r.offset, m.DeliveredPart, m.DeliveredOffset)
		}
		if (r.key == nil) != (m.Key == nil) || !bytes.Equal(r.key, m.Key) {
			t.Errorf("%s: key %q, want %q", id, r.key, m.Key)
		}
		if !bytes.Equal(r.value, m.Value) {
			t.Errorf("%s: value differs (%d bytes, want %d)", id, len(r.value), len(m.Value))
		}
		if want := fmt.Sprintf("h=%d", i); !strings.HasPrefix(r.headers, want+",") {
			t.Errorf("%s: headers %q, want prefix %q", id, r.headers, want)
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
			m[string(r.key)] = r.partition
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
				if r, ok := recs[m.ID]; !ok || !bytes.Equal(r.value, m.Value) {
					t.Errorf("%s: not read back intact by kcat", m.ID)
				}
			}
		})
	}
}
