package kafkacluster

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Record is one record as the Java consumer read it.
type Record struct {
	Partition int32
	Offset    int64
	Key       []byte // nil = null
	Value     []byte // nil = null
	Headers   []Header
}

// Header is one record header.
type Header struct {
	Key   string
	Value []byte
}

// HeaderValues returns the values of the named header, in order.
func (r Record) HeaderValues(name string) [][]byte {
	var vs [][]byte
	for _, h := range r.Headers {
		if h.Key == name {
			vs = append(vs, h.Value)
		}
	}
	return vs
}

// refClasspath is kafka-clients plus the compiled RefClient.
func (e Env) refClasspath() (string, error) {
	dir, err := e.refClientDir()
	if err != nil {
		return "", err
	}
	return dir + string(os.PathListSeparator) + e.Classpath(), nil
}

// ConsumeJava reads every record of topic, from the beginning to the end
// offsets when it starts, with the Apache Kafka Java consumer.
func (e Env) ConsumeJava(ctx context.Context, bootstrap, topic string) ([]Record, error) {
	cp, err := e.refClasspath()
	if err != nil {
		return nil, err
	}
	out, err := e.run(ctx, nil, cp, "RefClient", "consume", bootstrap, topic)
	if err != nil {
		return nil, err
	}
	var recs []Record
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 5 {
			return recs, fmt.Errorf("RefClient: bad line %q", line)
		}
		var r Record
		p, _ := strconv.ParseInt(f[0], 10, 32)
		r.Partition = int32(p)
		r.Offset, _ = strconv.ParseInt(f[1], 10, 64)
		if r.Key, err = unhex(f[2]); err != nil {
			return recs, err
		}
		if r.Value, err = unhex(f[3]); err != nil {
			return recs, err
		}
		if f[4] != "-" {
			for _, h := range strings.Split(f[4], ",") {
				k, v, _ := strings.Cut(h, ":")
				kb, err := unhex(k)
				if err != nil {
					return recs, err
				}
				vb, err := unhex(v)
				if err != nil {
					return recs, err
				}
				r.Headers = append(r.Headers, Header{string(kb), vb})
			}
		}
		recs = append(recs, r)
	}
	return recs, nil
}

func unhex(s string) ([]byte, error) {
	if s == "-" {
		return nil, nil
	}
	b, err := hex.DecodeString(strings.TrimPrefix(s, "x"))
	if err != nil {
		return nil, fmt.Errorf("RefClient: %q: %w", s, err)
	}
	return b, nil
}

// JavaPartitions produces one record per key to topic with the Java
// producer's default partitioner (acks=all) and returns the partition
// each key landed on.
func (e Env) JavaPartitions(ctx context.Context, bootstrap, topic string, keys []string) (map[string]int32, error) {
	cp, err := e.refClasspath()
	if err != nil {
		return nil, err
	}
	out, err := e.run(ctx, []byte(strings.Join(keys, "\n")+"\n"), cp, "RefClient", "partition", bootstrap, topic)
	if err != nil {
		return nil, err
	}
	parts := make(map[string]int32, len(keys))
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, p, ok := strings.Cut(line, "\t")
		if !ok {
			return parts, fmt.Errorf("RefClient: bad line %q", line)
		}
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil {
			return parts, err
		}
		parts[k] = int32(n)
	}
	return parts, nil
}

// ProducerPerformance runs org.apache.kafka.tools.ProducerPerformance (the
// kafka-producer-perf-test tool) with args and returns its output; the
// last line is the summary ("N records sent, X records/sec ...").
func (e Env) ProducerPerformance(ctx context.Context, args ...string) (string, error) {
	full := append([]string{"-Xmx512m", "-cp", e.Classpath(),
		"-Dlog4j2.configurationFile=" + quietLog4j(e.Home),
		"org.apache.kafka.tools.ProducerPerformance"}, args...)
	return e.runRaw(ctx, full...)
}

func (e Env) runRaw(ctx context.Context, args ...string) (string, error) {
	cmd := execCommand(ctx, e.Java, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("java %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
