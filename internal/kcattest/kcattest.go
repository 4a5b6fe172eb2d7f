// Package kcattest runs kcat (librdkafka's command-line client) in tests, as
// a Kafka client independent of the one sluice uses.
package kcattest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/testenv"
)

// Require returns the kcat binary. Without it the test is skipped, unless
// dependencies are required (testenv) or SLUICE_REQUIRE_KCAT=1: then it fails.
func Require(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("SLUICE_REQUIRE_KCAT") == "1" {
			t.Fatalf("kcat not found and SLUICE_REQUIRE_KCAT=1: scripts/deps/kcat.sh installs it (scripts/test runs it)")
		}
		testenv.Missing(t, "kcat", "scripts/deps/kcat.sh installs it; scripts/test runs it")
	}
	return path
}

// Record is one record as kcat printed it.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte // nil for a null key
	Value     []byte // nil for a null value
	Headers   string // kcat's "k=v,k2=v2"
}

// Header returns the values of the named header, in order.
func (r Record) Header(name string) []string {
	var out []string
	for _, h := range strings.Split(r.Headers, ",") {
		if k, v, ok := strings.Cut(h, "="); ok && k == name {
			out = append(out, v)
		}
	}
	return out
}

// format frames each record with byte lengths so binary keys and values
// come back exactly: @@topic|partition|offset|keylen|valuelen|key value|headers\n
// (a null key or value has length -1).
const format = "@@%t|%p|%o|%K|%S|%k%s|%h\n"

// Consume reads topic from the beginning to its end.
func Consume(t testing.TB, kcat, broker, topic string, extra ...string) []Record {
	t.Helper()
	args := append([]string{"-C", "-b", broker, "-t", topic, "-o", "beginning", "-e", "-q", "-f", format}, extra...)
	out := Run(t, kcat, nil, args...)
	var recs []Record
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
		r := Record{Topic: f[0]}
		p, _ := strconv.ParseInt(f[1], 10, 32)
		r.Partition = int32(p)
		r.Offset, _ = strconv.ParseInt(f[2], 10, 64)
		kl, _ := strconv.Atoi(f[3])
		vl, _ := strconv.Atoi(f[4])
		if kl >= 0 {
			r.Key, out = bytes.Clone(out[:kl]), out[kl:]
		}
		if vl >= 0 {
			r.Value, out = bytes.Clone(out[:vl]), out[vl:]
		}
		if len(out) == 0 || out[0] != '|' {
			t.Fatalf("kcat output: no header separator")
		}
		j := bytes.IndexByte(out, '\n')
		r.Headers, out = string(out[1:j]), out[j+1:]
		recs = append(recs, r)
	}
	return recs
}

// Run runs kcat with args (and stdin), failing the test on an error.
func Run(t testing.TB, kcat string, stdin []byte, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
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
