package kafka

import (
	"fmt"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluiceio/sluice/sink"
)

func TestOptionsDefaults(t *testing.T) {
	c, err := Options{Brokers: []string{"b:9092"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "kafka" || c.ClientID != "sluice" || c.acks != kafkago.RequireAll || c.compression != 0 ||
		c.Partitioner != "murmur2" || c.WriteTimeout != 10*time.Second || c.DialTimeout != 5*time.Second ||
		c.MaxMessageBytes != 1<<20 || c.BatchMessages != 1000 || c.UnknownTopicGrace != 5*time.Minute ||
		c.MetadataTTL != 15*time.Second || c.IdleTimeout != 30*time.Second || c.Logger == nil || c.Now == nil {
		t.Errorf("defaults: %+v", c)
	}
	c, err = Options{Brokers: []string{"b:9092"}, UnknownTopicGrace: -1, Acks: "one", Compression: "ZSTD"}.withDefaults()
	if err != nil || c.UnknownTopicGrace != 0 || c.acks != kafkago.RequireOne || c.compression != kafkago.Zstd {
		t.Errorf("got %+v, %v", c, err)
	}

	w, err := New(Options{Brokers: []string{"b:9092"}})
	if err != nil {
		t.Fatal(err)
	}
	if w.kw.RequiredAcks != kafkago.RequireAll || w.kw.MaxAttempts != 1 || w.kw.BatchTimeout != time.Millisecond ||
		w.kw.AllowAutoTopicCreation || w.kw.BatchSize != 1000 || w.kw.BatchBytes != 1<<20 ||
		w.kw.WriteTimeout != 10*time.Second || w.kw.ReadTimeout != 10*time.Second ||
		w.transport.DialTimeout != 5*time.Second || w.transport.IdleTimeout != 30*time.Second ||
		w.transport.MetadataTTL != 15*time.Second || w.transport.ClientID != "sluice" {
		t.Errorf("kafka-go settings: %+v %+v", w.kw, w.transport)
	}
}

func TestOptionsInvalid(t *testing.T) {
	b := []string{"b:9092"}
	for _, o := range []Options{
		{},
		{Brokers: []string{""}},
		{Brokers: []string{"a:1,b:2"}},
		{Brokers: b, Name: `x"y`},
		{Brokers: b, Acks: "two"},
		{Brokers: b, Compression: "brotli"},
		{Brokers: b, Partitioner: "crc32"},
		{Brokers: b, WriteTimeout: -time.Second},
		{Brokers: b, MaxMessageBytes: -1},
		{Brokers: b, MaxMessageBytes: 100},
		{Brokers: b, BatchMessages: -1},
		{Brokers: b, TopicPrefix: "bad prefix"},
		{Brokers: b, TopicMap: map[string]string{"a": "b c"}},
		{Brokers: b, TopicMap: map[string]string{"a": ""}},
		{Brokers: b, SASL: SASL{Mechanism: "gssapi", Username: "u"}},
		{Brokers: b, SASL: SASL{Mechanism: "plain"}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestSASLRedacted(t *testing.T) {
	s := SASL{Mechanism: "scram-sha-512", Username: "u", Password: "hunter2"}
	o := Options{SASL: s}
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%+v", o), fmt.Sprintf("%#v", o), fmt.Sprintf("%v", s.LogValue())} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("password in %q", out)
		}
	}
}

func TestValidTopic(t *testing.T) {
	for topic, ok := range map[string]bool{
		"orders": true, "a.b_c-D9": true, strings.Repeat("x", 249): true,
		"": false, ".": false, "..": false, "a b": false, "a/b": false, "ü": false, strings.Repeat("x", 250): false,
	} {
		if sink.ValidTopic(topic) != ok {
			t.Errorf("sink.ValidTopic(%q) = %v", topic, !ok)
		}
	}
}
