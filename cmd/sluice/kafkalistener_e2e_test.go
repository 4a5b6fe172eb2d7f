package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	kafkago "github.com/segmentio/kafka-go"
	kafkagoplain "github.com/segmentio/kafka-go/sasl/plain"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/sluiceio/sluice/internal/testenv"
)

// These tests point unchanged Kafka producers (librdkafka via kcat,
// franz-go, kafka-go) at the real binary's Kafka listener, forward to a
// kfake cluster with the kafka sink, and read the cluster back with kcat.

// startListener runs sluice with the Kafka listener in front of a kafka
// sink to broker; topics gets partition counts as "t=n,...".
func startListener(t *testing.T, broker, topics string, env ...string) (*proc, string) {
	t.Helper()
	kl := freePort(t)
	env = append([]string{"SLUICE_SPOOL_DIR=" + t.TempDir(), "SLUICE_SINKS=kafka", "SLUICE_KAFKA_BROKERS=" + broker,
		"SLUICE_LISTEN_KAFKA=" + kl, "SLUICE_LISTEN_KAFKA_TOPIC_PARTITIONS=" + topics}, env...)
	return start(t, env...), kl
}

// metric returns the value of one series from /metrics (0 if absent).
func metric(t *testing.T, p *proc, series string) float64 {
	t.Helper()
	resp, err := http.Get(p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, series+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}

// TestE2EKafkaListenerKcat: librdkafka (kcat) produces through the
// listener with every codec, idempotence on and off, keyed with its own
// partitioner (CRC32, not sluice's murmur2) and to an explicit partition;
// kcat reads the cluster back: every message once, on the partition
// librdkafka chose, with key, value, headers and a sluice-id.
func TestE2EKafkaListenerKcat(t *testing.T) {
	kcat := requireKcat(t)
	_, broker := newKfake(t, kfake.SeedTopics(4, "orders"))
	p, kl := startListener(t, broker, "orders=4")

	type want struct {
		key       string
		partition int
	}
	wants := map[string]want{} // by value
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		for _, idem := range []string{"false", "true"} {
			var in bytes.Buffer
			for i := range 20 {
				k := fmt.Sprintf("key-%s-%s-%d", codec, idem, i)
				v := fmt.Sprintf("value-%s-%s-%d-%s", codec, idem, i, strings.Repeat("x", 100))
				fmt.Fprintf(&in, "%s\t%s\n", k, v)
				wants[v] = want{k, int(crc32.ChecksumIEEE([]byte(k)) % 4)}
			}
			runKcatP(t, kcat, in.Bytes(), "-P", "-b", kl, "-t", "orders", "-K", "\t", "-z", codec,
				"-H", "origin=kcat", "-X", "enable.idempotence="+idem, "-X", "partitioner=consistent")
			// An explicit partition, no key.
			v := fmt.Sprintf("explicit-%s-%s", codec, idem)
			wants[v] = want{"", 3}
			runKcatP(t, kcat, []byte(v+"\n"), "-P", "-b", kl, "-t", "orders", "-p", "3", "-z", codec, "-X", "enable.idempotence="+idem)
		}
		if codec != "none" && metric(t, p, `sluice_kafka_listener_batches_total{codec="`+codec+`"}`) == 0 {
			t.Errorf("librdkafka sent no %s batch: the ApiVersions gates are not met", codec)
		}
	}
	waitBacklogEmpty(t, p)
	recs := kcatRead(t, kcat, broker, "orders")
	seen := map[string]bool{}
	for _, r := range recs {
		v := string(r.value)
		w, ok := wants[v]
		switch {
		case !ok:
			t.Errorf("unexpected record %q", v)
			continue
		case seen[v]:
			t.Errorf("duplicate %q", v)
		}
		seen[v] = true
		if r.partition != w.partition {
			t.Errorf("%s: partition %d, librdkafka chose %d", v, r.partition, w.partition)
		}
		if string(r.key) != w.key || (w.key == "" && r.key != nil) {
			t.Errorf("%s: key %q, want %q", v, r.key, w.key)
		}
		if len(r.headers["sluice-id"]) != 1 {
			t.Errorf("%s: sluice-id headers %v", v, r.headers["sluice-id"])
		}
		if w.key != "" && (len(r.headers["origin"]) != 1 || r.headers["origin"][0] != "kcat") {
			t.Errorf("%s: origin header %v", v, r.headers["origin"])
		}
	}
	if len(seen) != len(wants) {
		t.Errorf("read back %d distinct records, want %d", len(seen), len(wants))
	}
}

// runKcatP is runKcat for producing: kcat -P exits 0 even when messages
// failed, so its stderr is checked for delivery errors too.
func runKcatP(t *testing.T, kcat string, stdin []byte, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("ERROR")) || bytes.Contains(out, []byte("failed")) {
		t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestE2EKafkaListenerGoClients: franz-go (idempotent, every codec, its
// own partitioner) and kafka-go's Writer (no idempotence, FNV-1a Hash
// balancer) produce through the listener; the partitions they chose and
// every message arrive once.
func TestE2EKafkaListenerGoClients(t *testing.T) {
	kcat := requireKcat(t)
	_, broker := newKfake(t, kfake.SeedTopics(3, "events"))
	p, kl := startListener(t, broker, "events=3")

	chosen := map[string]int32{} // value → partition the client reported
	codecs := []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()}
	for ci, codec := range codecs {
		cl, err := kgo.NewClient(kgo.SeedBrokers(kl), kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic("events"))
		if err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for i := range 50 {
			recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "kgo-%d-%d", ci, i),
				Headers: []kgo.RecordHeader{{Key: "origin", Value: []byte("kgo")}}})
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatalf("franz-go codec %d: %v", ci, err)
		}
		cl.Close()
		for _, r := range recs {
			chosen[string(r.Value)] = r.Partition
		}
	}

	w := &kafkago.Writer{Addr: kafkago.TCP(kl), Topic: "events", Balancer: &kafkago.Hash{}, RequiredAcks: kafkago.RequireAll,
		BatchTimeout: time.Millisecond, Compression: kafkago.Snappy}
	var kmsgs []kafkago.Message
	for i := range 50 {
		kmsgs = append(kmsgs, kafkago.Message{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "kafkago-%d", i)})
	}
	if err := w.WriteMessages(context.Background(), kmsgs...); err != nil {
		t.Fatalf("kafka-go: %v", err)
	}
	w.Close()
	hash := &kafkago.Hash{}
	for _, m := range kmsgs {
		chosen[string(m.Value)] = int32(hash.Balance(m, 0, 1, 2))
	}

	waitBacklogEmpty(t, p)
	seen := map[string]bool{}
	for _, r := range kcatRead(t, kcat, broker, "events") {
		v := string(r.value)
		part, ok := chosen[v]
		if !ok || seen[v] {
			t.Errorf("unexpected or duplicate record %q", v)
			continue
		}
		seen[v] = true
		if int32(r.partition) != part {
			t.Errorf("%s: partition %d, the client chose %d", v, r.partition, part)
		}
		if len(r.headers["sluice-id"]) != 1 {
			t.Errorf("%s: no sluice-id", v)
		}
	}
	if len(seen) != len(chosen) {
		t.Errorf("read back %d records, want %d", len(seen), len(chosen))
	}
}

// TestE2EKafkaListenerAsksForTheToken: with SLUICE_AUTH_TOKEN set, the
// Kafka listener takes producers that authenticate with SASL/PLAIN and the
// token as password: librdkafka (kcat), franz-go and kafka-go, each under
// its own user name. A producer without SASL, or with a wrong password,
// gets nothing spooled, and the refusals are counted. The HTTP listener
// still wants the token too. What the cluster holds is exactly what the
// authenticated producers sent.
func TestE2EKafkaListenerAsksForTheToken(t *testing.T) {
	kcat := requireKcat(t)
	_, broker := newKfake(t, kfake.SeedTopics(1, "events"))
	const token = "s3cret"
	p, kl := startListener(t, broker, "events=1", "SLUICE_AUTH_TOKEN="+token)
	code, _, err := push(p.url, "events", []byte("over http"), "text/plain")
	if err != nil || code != http.StatusUnauthorized {
		t.Fatalf("HTTP push without the token: %d %v, want 401", code, err)
	}
	sasl := func(password string) []string {
		return []string{"-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=PLAIN",
			"-X", "sasl.username=kcat", "-X", "sasl.password=" + password}
	}
	runKcatP(t, kcat, []byte("kcat-1\nkcat-2\n"), append([]string{"-P", "-b", kl, "-t", "events"}, sasl(token)...)...)

	// Refused: kcat with a wrong password, franz-go and kafka-go without
	// SASL or with a wrong password. kcat -P exits 0 with undelivered
	// messages: its output says why.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, append([]string{"-P", "-b", kl, "-t", "events", "-X", "message.timeout.ms=1500"},
		sasl("wrong")...)...)
	cmd.Stdin = strings.NewReader("kcat-wrong\n")
	out, _ := cmd.CombinedOutput()
	if !bytes.Contains(out, []byte("SASL authentication error: authentication failed")) {
		t.Errorf("kcat with a wrong password: %s", out)
	}
	// Short delivery timeouts for the refused (the last option wins).
	kgoProduce := func(value string, opts ...kgo.Opt) error {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(kl), kgo.DefaultProduceTopic("events"),
			kgo.RecordDeliveryTimeout(1500 * time.Millisecond)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		return cl.ProduceSync(context.Background(), &kgo.Record{Value: []byte(value)}).FirstErr()
	}
	if err := kgoProduce("kgo-none"); err == nil {
		t.Error("franz-go without SASL: produced")
	}
	if err := kgoProduce("kgo-wrong", kgo.SASL(plain.Auth{User: "app", Pass: "wrong"}.AsMechanism())); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Errorf("franz-go with a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	kgoWrite := func(value, password string) error {
		w := &kafkago.Writer{Addr: kafkago.TCP(kl), Topic: "events", RequiredAcks: kafkago.RequireAll, BatchTimeout: time.Millisecond,
			MaxAttempts: 1, Transport: &kafkago.Transport{SASL: kafkagoplain.Mechanism{Username: "kafka-go", Password: password}}}
		defer w.Close()
		return w.WriteMessages(ctx, kafkago.Message{Value: []byte(value)})
	}
	if err := kgoWrite("kafkago-wrong", "wrong"); err == nil {
		t.Error("kafka-go with a wrong password: produced")
	}

	// Accepted: franz-go and kafka-go with the token.
	if err := kgoProduce("kgo-1", kgo.SASL(plain.Auth{User: "app", Pass: token}.AsMechanism()), kgo.RecordDeliveryTimeout(time.Minute)); err != nil {
		t.Fatalf("franz-go with the token: %v", err)
	}
	if err := kgoWrite("kafkago-1", token); err != nil {
		t.Fatalf("kafka-go with the token: %v", err)
	}
	if n := metric(t, p, "sluice_kafka_listener_auth_failures_total"); n < 3 {
		t.Errorf("auth failures counted: %v, want at least 3", n)
	}
	waitBacklogEmpty(t, p)
	var got []string
	for _, r := range kcatRead(t, kcat, broker, "events") {
		got = append(got, string(r.value))
	}
	slices.Sort(got)
	if want := []string{"kafkago-1", "kcat-1", "kcat-2", "kgo-1"}; !slices.Equal(got, want) {
		t.Errorf("the cluster holds %q, want %q", got, want)
	}
}

// TestE2EKafkaListenerOutageAndKill9: with the upstream cluster down, an
// idempotent franz-go producer keeps getting acks from the listener; sluice
// is killed with SIGKILL mid-stream and restarted on the same
// spool and port, the producer retries what was in flight, the cluster
// comes back:
// every acknowledged record arrives, on the partition the producer chose,
// spooled exactly once (one sluice-id per record; the forwarder's own
// at-least-once re-sends carry the same sluice-id). Whether the kill lands
// between a batch's fsync and its answer is up to timing (the log says how
// many retried batches were recognised); TestSequenceWindowSurvivesRestart
// in frontend/kafkaproto makes that case deterministic.
func TestE2EKafkaListenerOutageAndKill9(t *testing.T) {
	kcat := requireKcat(t)
	data := t.TempDir()
	c, broker := newKfake(t, kfake.SeedTopics(2, "k"), kfake.DataDir(data), kfake.SyncWrites())
	_, port, _ := net.SplitHostPort(broker)
	kl := freePort(t)
	env := []string{"SLUICE_SPOOL_DIR=" + t.TempDir(), "SLUICE_SINKS=kafka", "SLUICE_KAFKA_BROKERS=" + broker,
		"SLUICE_KAFKA_RETRY_MAX=500ms", "SLUICE_KAFKA_WRITE_TIMEOUT=2s",
		"SLUICE_LISTEN_KAFKA=" + kl, "SLUICE_LISTEN_KAFKA_TOPIC_PARTITIONS=k=2"}
	p := start(t, env...)
	c.Close() // upstream down from the start

	cl, err := kgo.NewClient(kgo.SeedBrokers(kl), kgo.DefaultProduceTopic("k"), kgo.ProducerLinger(time.Millisecond), kgo.MaxBufferedRecords(50),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }), kgo.RecordDeliveryTimeout(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 3000
	var acked, finished atomic.Int64
	var mu sync.Mutex
	chosen := map[string]int32{}
	var errs []error
	var wg sync.WaitGroup
	go func() { // a steady stream: Produce blocks while 50 records are buffered
		for i := range n {
			wg.Add(1)
			cl.Produce(context.Background(), &kgo.Record{Key: fmt.Appendf(nil, "key-%d", i%40), Value: fmt.Appendf(nil, "v-%d", i)},
				func(r *kgo.Record, err error) {
					defer wg.Done()
					defer finished.Add(1)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						errs = append(errs, err)
						return
					}
					acked.Add(1)
					chosen[string(r.Value)] = r.Partition
				})
		}
	}()
	for _, at := range []int64{n / 3} {
		for acked.Load() < at {
			time.Sleep(time.Millisecond)
		}
		p.cmd.Process.Kill() // mid-stream: batches acked, in flight, buffered
		<-p.exited
		p = start(t, env...)
	}
	for finished.Load() < n { // wg.Add runs in the producing goroutine
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d produce errors, first: %v", len(errs), errs[0])
	}
	port2, _ := strconv.Atoi(port)
	for i := 0; ; i++ { // upstream back on the same port
		c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port2), kfake.DataDir(data), kfake.SyncWrites())
		if err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restart broker: %v", err)
	}
	t.Cleanup(c.Close)
	waitBacklogEmpty(t, p)

	ids := map[string]map[string]bool{} // value → sluice-ids
	for _, r := range kcatRead(t, kcat, broker, "k") {
		v := string(r.value)
		if ids[v] == nil {
			ids[v] = map[string]bool{}
		}
		for _, id := range r.headers["sluice-id"] {
			ids[v][id] = true
		}
		if part, ok := chosen[v]; !ok || int32(r.partition) != part {
			t.Errorf("%s: partition %d, producer chose %d (known %v)", v, r.partition, part, ok)
		}
	}
	lost, dups := 0, 0
	for v := range chosen {
		switch len(ids[v]) {
		case 0:
			lost++
		case 1:
		default:
			dups++
		}
	}
	t.Logf("%d acknowledged across a kill -9 with the cluster down: %d lost, %d spooled twice; after the restart %v retried batches were recognised",
		len(chosen), lost, dups, metric(t, p, "sluice_kafka_listener_duplicate_batches_total"))
	if lost != 0 || dups != 0 || len(chosen) != n {
		t.Fatalf("%d acknowledged of %d, %d lost, %d spooled twice", len(chosen), n, lost, dups)
	}
}

// TestE2EKafkaListenerJavaClient: the Java client (kafka-clients,
// idempotent, acks=all, its default partitioner) produces through the
// listener with every codec; kcat reads the cluster back: every record
// once, on the partition the Java client reported, with its header.
func TestE2EKafkaListenerJavaClient(t *testing.T) {
	kcat := requireKcat(t)
	cp := os.Getenv("SLUICE_KAFKA_CLIENTS_CP")
	java, err := exec.LookPath("java")
	if cp == "" || err != nil {
		testenv.Missing(t, "the Java Kafka client", "java 17 and scripts/deps/kafkaclients.sh (exports SLUICE_KAFKA_CLIENTS_CP)")
	}
	_, broker := newKfake(t, kfake.SeedTopics(5, "jv"))
	p, kl := startListener(t, broker, "jv=5")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, java, "-cp", cp, "testdata/JavaProducer.java", kl, "jv", "200", "none", "gzip", "snappy", "lz4", "zstd")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("java producer: %v\n%s", err, stderr.String())
	}
	chosen := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var v string
		var part int
		if _, err := fmt.Sscan(l, &v, &part); err != nil {
			t.Fatalf("java output %q: %v", l, err)
		}
		chosen[v] = part
	}
	if len(chosen) != 5*200 {
		t.Fatalf("java acknowledged %d records, want %d\n%s", len(chosen), 5*200, stderr.String())
	}
	for _, codec := range []string{"gzip", "snappy", "lz4", "zstd"} {
		if metric(t, p, `sluice_kafka_listener_batches_total{codec="`+codec+`"}`) == 0 {
			t.Errorf("the Java client sent no %s batch", codec)
		}
	}
	waitBacklogEmpty(t, p)
	seen := map[string]bool{}
	for _, r := range kcatRead(t, kcat, broker, "jv") {
		v := string(r.value)
		part, ok := chosen[v]
		if !ok || seen[v] {
			t.Errorf("unexpected or duplicate record %q", v)
			continue
		}
		seen[v] = true
		if r.partition != part {
			t.Errorf("%s: partition %d, the Java client chose %d", v, r.partition, part)
		}
		if len(r.headers["origin"]) != 1 || len(r.headers["sluice-id"]) != 1 {
			t.Errorf("%s: headers %v", v, r.headers)
		}
	}
	if len(seen) != len(chosen) {
		t.Errorf("read back %d records, want %d", len(seen), len(chosen))
	}
}

// TestE2EKafkaListenerJavaClientSASL: the Java client authenticates with
// SASL/PLAIN and SLUICE_AUTH_TOKEN as its password, and produces; with a
// wrong password it fails with an authentication error and spools nothing.
func TestE2EKafkaListenerJavaClientSASL(t *testing.T) {
	cp := os.Getenv("SLUICE_KAFKA_CLIENTS_CP")
	java, err := exec.LookPath("java")
	if cp == "" || err != nil {
		testenv.Missing(t, "the Java Kafka client", "java 17 and scripts/deps/kafkaclients.sh (exports SLUICE_KAFKA_CLIENTS_CP)")
	}
	_, broker := newKfake(t, kfake.SeedTopics(1, "jv"))
	p, kl := startListener(t, broker, "jv=1", "SLUICE_AUTH_TOKEN=s3cret")
	run := func(password string, n int) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, java, "-cp", cp, "testdata/JavaProducer.java", kl, "jv", strconv.Itoa(n), "none")
		cmd.Env = append(os.Environ(), "SASL_PASSWORD="+password)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("s3cret", 20)
	if err != nil {
		t.Fatalf("java producer with the token: %v\n%s", err, out)
	}
	if n := strings.Count(out, "java-none-"); n != 20 {
		t.Fatalf("java acknowledged %d records, want 20:\n%s", n, out)
	}
	// One record: the client logs in again for each send, a second apart.
	out, err = run("wrong", 1)
	if err == nil || !strings.Contains(out, "SaslAuthenticationException") {
		t.Errorf("java producer with a wrong password: %v\n%s", err, out)
	}
	if n := metric(t, p, "sluice_kafka_listener_records_total"); n != 20 {
		t.Errorf("%v records spooled, want the 20 authenticated ones", n)
	}
}

// TestE2EKafkaListenerSarama: Sarama's SyncProducer (idempotent, acks
// all, its FNV-1a hash partitioner) with every codec.
func TestE2EKafkaListenerSarama(t *testing.T) {
	kcat := requireKcat(t)
	_, broker := newKfake(t, kfake.SeedTopics(4, "sr"))
	p, kl := startListener(t, broker, "sr=4")
	chosen := map[string]int32{}
	codecs := map[string]sarama.CompressionCodec{"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP,
		"snappy": sarama.CompressionSnappy, "lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD}
	for name, codec := range codecs {
		cfg := sarama.NewConfig()
		cfg.Version = sarama.V2_8_0_0
		cfg.Producer.Idempotent = true
		cfg.Net.MaxOpenRequests = 1
		cfg.Producer.RequiredAcks = sarama.WaitForAll
		cfg.Producer.Return.Successes = true
		cfg.Producer.Compression = codec
		prod, err := sarama.NewSyncProducer([]string{kl}, cfg)
		if err != nil {
			t.Fatalf("sarama %s: %v", name, err)
		}
		var msgs []*sarama.ProducerMessage
		for i := range 40 {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: "sr", Key: sarama.StringEncoder(fmt.Sprintf("key-%d", i)),
				Value: sarama.StringEncoder(fmt.Sprintf("sarama-%s-%d", name, i))})
		}
		if err := prod.SendMessages(msgs); err != nil {
			t.Fatalf("sarama %s: %v", name, err)
		}
		prod.Close()
		for _, m := range msgs {
			v, _ := m.Value.Encode()
			chosen[string(v)] = m.Partition
		}
		if name != "none" && metric(t, p, `sluice_kafka_listener_batches_total{codec="`+name+`"}`) == 0 {
			t.Errorf("Sarama sent no %s batch", name)
		}
	}
	waitBacklogEmpty(t, p)
	seen := map[string]bool{}
	for _, r := range kcatRead(t, kcat, broker, "sr") {
		v := string(r.value)
		part, ok := chosen[v]
		if !ok || seen[v] {
			t.Errorf("unexpected or duplicate record %q", v)
			continue
		}
		seen[v] = true
		if int32(r.partition) != part {
			t.Errorf("%s: partition %d, Sarama chose %d", v, r.partition, part)
		}
	}
	if len(seen) != len(chosen) {
		t.Errorf("read back %d records, want %d", len(seen), len(chosen))
	}
}

// TestE2EKafkaListenerMirrorsPartitions: with no count configured, the
// listener advertises the upstream topic's partition count, so franz-go's
// own partitioner spreads keys over all 7 partitions and each record lands
// on the one it chose; a record over the topic's max.message.bytes is
// refused at ingest. After a restart with the cluster down, the count
// persisted in the spool directory still serves the topic; a topic never
// seen gets a retriable error until the client gives up.
func TestE2EKafkaListenerMirrorsPartitions(t *testing.T) {
	kcat := requireKcat(t)
	data := t.TempDir()
	c, broker := newKfake(t, kfake.SeedTopics(7, "mir"), kfake.DataDir(data), kfake.SyncWrites())
	kl := freePort(t)
	env := []string{"SLUICE_SPOOL_DIR=" + t.TempDir(), "SLUICE_SINKS=kafka", "SLUICE_KAFKA_BROKERS=" + broker,
		"SLUICE_KAFKA_RETRY_MAX=500ms", "SLUICE_LISTEN_KAFKA=" + kl}
	p := start(t, env...)

	chosen := map[string]int32{}
	produce := func(prefix string, n int) error {
		cl, err := kgo.NewClient(kgo.SeedBrokers(kl), kgo.DefaultProduceTopic("mir"), kgo.RecordDeliveryTimeout(20*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		var recs []*kgo.Record
		for i := range n {
			recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "key-%d", i), Value: fmt.Appendf(nil, "%s-%d", prefix, i)})
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			return err
		}
		for _, r := range recs {
			chosen[string(r.Value)] = r.Partition
		}
		return nil
	}
	// A topic limit upstream is checked at ingest: the producer hears
	// MESSAGE_TOO_LARGE instead of an ack followed by a dead letter.
	admin, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	alter := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, "mir"
	cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	cfg.Name, cfg.Value = "max.message.bytes", kmsg.StringPtr("4096")
	res.Configs = append(res.Configs, cfg)
	alter.Resources = append(alter.Resources, res)
	if _, err := alter.RequestWith(context.Background(), admin); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	if err := produce("up", 200); err != nil {
		t.Fatal(err)
	}
	big, err := kgo.NewClient(kgo.SeedBrokers(kl), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	err = big.ProduceSync(context.Background(), &kgo.Record{Topic: "mir", Value: bytes.Repeat([]byte("x"), 8192)}).FirstErr()
	big.Close()
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Errorf("record over the topic's max.message.bytes: %v, want MESSAGE_TOO_LARGE", err)
	}
	used := map[int32]bool{}
	for _, part := range chosen {
		used[part] = true
	}
	if len(used) != 7 {
		t.Fatalf("franz-go used partitions %v, want all 7 of the upstream topic", used)
	}
	waitBacklogEmpty(t, p)

	// Cluster down, sluice restarted: the persisted count still serves.
	c.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t)
	p = start(t, env...)
	if err := produce("down", 100); err != nil {
		t.Fatalf("known topic with the cluster down: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kl), kgo.RecordDeliveryTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	err = cl.ProduceSync(context.Background(), &kgo.Record{Topic: "never-seen", Value: []byte("x")}).FirstErr()
	cl.Close()
	if err == nil {
		t.Error("a topic never seen was acked with the cluster down and no count configured")
	}

	_, port, _ := net.SplitHostPort(broker)
	port2, _ := strconv.Atoi(port)
	for i := 0; ; i++ {
		c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port2), kfake.DataDir(data), kfake.SyncWrites())
		if err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restart broker: %v", err)
	}
	t.Cleanup(c.Close)
	waitBacklogEmpty(t, p)
	seen := map[string]bool{}
	for _, r := range kcatRead(t, kcat, broker, "mir") {
		v := string(r.value)
		if part, ok := chosen[v]; !ok || int32(r.partition) != part {
			t.Errorf("%s: partition %d, franz-go chose %d (known %v)", v, r.partition, part, ok)
		}
		seen[v] = true
	}
	if len(seen) != len(chosen) {
		t.Errorf("read back %d records, want %d", len(seen), len(chosen))
	}
}
