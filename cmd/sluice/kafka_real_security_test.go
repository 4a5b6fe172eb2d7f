package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/kafkacluster"
)

// TestKafkaRealSecurity runs a one-node cluster with a SASL_SSL
// (SCRAM-SHA-512) listener and an SSL listener that requires client
// certificates, behind a CA the test generates, with ACLs enforced:
//   - a wrong password is retried with the sink failing, nothing
//     dead-lettered; so is the missing ACL once the password is right
//     (the topic is hidden from the principal), past the unknown-topic
//     grace; granting the ACL heals it and the backlog drains;
//   - mutual TLS: the client certificate's principal writes once allowed.
func TestKafkaRealSecurity(t *testing.T) {
	env := kafkacluster.Require(t)
	ctx := context.Background()
	dir := t.TempDir()
	files, err := kafkacluster.GenerateTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kafkacluster.Start(ctx, kafkacluster.Options{Nodes: 1, Dir: dir, Env: env,
		Security: &kafkacluster.Security{CAFile: files.CA, KeyFile: files.BrokerKey}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	t.Logf("secure node up in %v", c.StartupTime.Round(time.Millisecond))
	createTopic(t, c, "sec", 2, nil)
	createTopic(t, c, "mtls", 2, nil)
	if err := c.SetSCRAM(ctx, "sluice", "the-right-one"); err != nil {
		t.Fatalf("%v\n%s", err, c.Logs(30))
	}

	t.Run("scram-over-tls", func(t *testing.T) {
		p := start(t, "SLUICE_SPOOL_DIR="+t.TempDir(), "SLUICE_SINKS=kafka",
			"SLUICE_KAFKA_BROKERS="+strings.Join(c.SASLBrokers(), ","), "SLUICE_KAFKA_TLS=true",
			"SLUICE_KAFKA_TLS_CA_FILE="+files.CA, "SLUICE_KAFKA_SASL_MECHANISM=scram-sha-512",
			"SLUICE_KAFKA_SASL_USERNAME=sluice", "SLUICE_KAFKA_SASL_PASSWORD=rotated-too-early",
			"SLUICE_KAFKA_UNKNOWN_TOPIC_GRACE=2s", "SLUICE_KAFKA_RETRY_MAX=500ms")
		var ids []string
		for i := 0; i < 20; i++ {
			code, id, err := push(p.url, "sec", []byte(fmt.Sprintf("secret-%d", i)), "")
			if err != nil || code != 202 {
				t.Fatalf("push: %d %v", code, err)
			}
			ids = append(ids, id...)
		}
		noDeadLetters := func(stage string) {
			if n := metricSum(t, p, "sluice_deadletters_total", `sink="kafka"`); n != 0 {
				t.Fatalf("%s: %v messages dead-lettered", stage, n)
			}
			if st := getStatus(t, p, ids[0]); st.Status != "pending" {
				t.Fatalf("%s: message status %+v", stage, st)
			}
		}
		failing := func() bool {
			return metricValue(t, p, `sluice_sink_failing{sink="kafka"}`) == "1" &&
				metricValue(t, p, `sluice_sink_auth_failing{sink="kafka"}`) == "1"
		}
		waitFor(t, "wrong password: sink failing on auth", 60*time.Second, failing)
		time.Sleep(3 * time.Second) // past the unknown-topic grace
		noDeadLetters("wrong password")

		// The broker learns the password sluice has: authentication
		// passes, but the principal has no ACL on the topic.
		if err := c.SetSCRAM(ctx, "sluice", "rotated-too-early"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "authorization failure reported", 60*time.Second, func() bool {
			return strings.Contains(p.logs(), "Authorization Failed")
		})
		time.Sleep(3 * time.Second)
		if !failing() {
			t.Fatalf("missing ACL: sink not failing on auth")
		}
		noDeadLetters("missing ACL")

		if err := c.AllowWrite(ctx, "User:sluice", "sec"); err != nil {
			t.Fatal(err)
		}
		waitBacklogEmptyWithin(t, p, 2*time.Minute)
		if v := metricValue(t, p, `sluice_sink_auth_failing{sink="kafka"}`); v != "0" {
			t.Fatalf("auth failing %s after healing", v)
		}
		recs, err := env.ConsumeJava(ctx, c.Bootstrap(), "sec")
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 20 {
			t.Fatalf("Java consumer read %d records, want 20", len(recs))
		}
		if n := metricSum(t, p, "sluice_deadletters_total", `sink="kafka"`); n != 0 {
			t.Fatalf("%v dead letters", n)
		}
		if strings.Contains(p.logs(), "the-right-one") || strings.Contains(p.logs(), "rotated-too-early") {
			t.Fatal("a password is in the agent's log")
		}
	})

	t.Run("mutual-tls", func(t *testing.T) {
		if err := c.AllowWrite(ctx, "User:CN="+kafkacluster.ClientCN, "mtls"); err != nil {
			t.Fatal(err)
		}
		p := start(t, "SLUICE_SPOOL_DIR="+t.TempDir(), "SLUICE_SINKS=kafka",
			"SLUICE_KAFKA_BROKERS="+strings.Join(c.SSLBrokers(), ","), "SLUICE_KAFKA_TLS=true",
			"SLUICE_KAFKA_TLS_CA_FILE="+files.CA, "SLUICE_KAFKA_TLS_CERT_FILE="+files.ClientCert,
			"SLUICE_KAFKA_TLS_KEY_FILE="+files.ClientKey)
		for i := 0; i < 10; i++ {
			if code, _, err := push(p.url, "mtls", []byte(fmt.Sprintf("m-%d", i)), ""); err != nil || code != 202 {
				t.Fatalf("push: %d %v", code, err)
			}
		}
		waitBacklogEmptyWithin(t, p, time.Minute)
		recs, err := env.ConsumeJava(ctx, c.Bootstrap(), "mtls")
		if err != nil || len(recs) != 10 {
			t.Fatalf("Java consumer: %d records, %v", len(recs), err)
		}

		// Without a client certificate the handshake fails: retried, not
		// dead-lettered.
		q := start(t, "SLUICE_SPOOL_DIR="+t.TempDir(), "SLUICE_SINKS=kafka",
			"SLUICE_KAFKA_BROKERS="+strings.Join(c.SSLBrokers(), ","), "SLUICE_KAFKA_TLS=true",
			"SLUICE_KAFKA_TLS_CA_FILE="+files.CA, "SLUICE_KAFKA_RETRY_MAX=500ms")
		if code, _, err := push(q.url, "mtls", []byte("no-cert"), ""); err != nil || code != 202 {
			t.Fatalf("push: %d %v", code, err)
		}
		waitFor(t, "no client certificate: sink failing", time.Minute, func() bool {
			return metricValue(t, q, `sluice_sink_failing{sink="kafka"}`) == "1"
		})
		time.Sleep(2 * time.Second)
		if n := metricSum(t, q, "sluice_deadletters_total", `sink="kafka"`); n != 0 {
			t.Fatalf("%v dead letters without a client certificate", n)
		}
		if n := metricSum(t, q, "sluice_sink_retries_total", `reason="tls"`); n == 0 {
			t.Fatalf("without a client certificate: retries %s, want reason tls", retryReasons(t, q))
		}
	})
}
