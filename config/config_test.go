package config

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// isolate hides the SLUICE_* variables of the test process (t.Setenv
// restores them afterwards) and sets env.
func isolate(t *testing.T, env map[string]string) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(strings.ToUpper(name), "SLUICE_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}

// mustLoad loads env and fails the test on an error.
func mustLoad(t *testing.T, env map[string]string) *Config {
	t.Helper()
	isolate(t, env)
	c, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

// loadErr loads env and returns the error lines; the test fails when Load
// succeeds.
func loadErr(t *testing.T, env map[string]string) []string {
	t.Helper()
	isolate(t, env)
	c, err := Load()
	if err == nil {
		t.Fatalf("Load succeeded, want an error; config:\n%s", c.Redacted())
	}
	if c != nil {
		t.Errorf("Load returned a config with an error")
	}
	return strings.Split(err.Error(), "\n")
}

// lineFor returns the error line about variable name, or fails.
func lineFor(t *testing.T, lines []string, name string) string {
	t.Helper()
	for _, l := range lines {
		if strings.HasPrefix(l, name+": ") {
			return l
		}
	}
	t.Fatalf("no error names %s; got:\n%s", name, strings.Join(lines, "\n"))
	return ""
}

func TestLoadDefaults(t *testing.T) {
	c := mustLoad(t, nil)
	want := &Config{
		Listen:             "127.0.0.1:7101",
		AdminListen:        ":7103",
		SpoolDir:           "sluice-spool",
		SpoolMaxBytes:      1 << 30,
		SpoolSegmentBytes:  1 << 20,
		SpoolSync:          "always",
		SpoolSyncInterval:  100 * time.Millisecond,
		SpoolFullPolicy:    "reject",
		SpoolOrphanCursors: "keep",
		SpoolAppendTimeout: 5 * time.Second,
		DeadletterMaxBytes: 64 << 20,
		DrainTimeout:       20 * time.Second,
		LogLevel:           "info",
		LogFormat:          "json",
		MaxMessageBytes:    1 << 20,
		MaxRequestBytes:    16 << 20,
		MaxHeaderBytes:     16 << 10,
		MaxHeaders:         64,
		MaxInflightBytes:   64 << 20,
		MaxConnections:     4096,
		AckTimeout:         10 * time.Second,
		AckTimeoutMax:      60 * time.Second,
		ReadTimeout:        10 * time.Second,
		WriteTimeout:       10 * time.Second,
		IdleTimeout:        60 * time.Second,
		RecordCache:        65536,
		CallbackMaxBytes:   64 << 20,
		CallbackMaxPending: 100000,
		CallbackAttempts:   5,
		CallbackBackoff:    time.Second,
		IdempotencyWindow:  10 * time.Minute,
		IdempotencyMaxKeys: 100000,
		RestproxyAck:       "spooled",
		RestproxyClusterID: "sluice",
		ListenKafkaMirror:  true,
		Sinks:              List{"stdout"},
		SinkConfigs: []Sink{{
			Name:          "stdout",
			Type:          "stdout",
			Topics:        List{"*"},
			BacklogPolicy: "reject",
			BatchMessages: 1000,
			BatchBytes:    1 << 20,
			Linger:        5 * time.Millisecond,
			RetryMin:      100 * time.Millisecond,
			RetryMax:      30 * time.Second,
		}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
}

func TestLoadSinkDefaults(t *testing.T) {
	c := mustLoad(t, map[string]string{
		"SLUICE_SINKS":         "Kafka, archive ,web",
		"SLUICE_KAFKA_BROKERS": "b1:9092",
		"SLUICE_ARCHIVE_TYPE":  "FILE",
		"SLUICE_ARCHIVE_PATH":  "/var/log/sluice",
		"SLUICE_WEB_TYPE":      "http",
		"SLUICE_WEB_URL":       "https://collector.example.com/v1/messages",
	})
	if got, want := c.Sinks, (List{"kafka", "archive", "web"}); !reflect.DeepEqual(got, want) {
		t.Fatalf("Sinks = %q, want %q", got, want)
	}
	k, f, h := c.SinkConfigs[0], c.SinkConfigs[1], c.SinkConfigs[2]
	if k.Type != "kafka" || k.Kafka == nil || k.File != nil || k.HTTP != nil {
		t.Fatalf("kafka sink: %+v", k)
	}
	wantKafka := KafkaSink{
		Brokers:           List{"b1:9092"},
		ClientID:          "sluice",
		Acks:              "all",
		Compression:       "none",
		Partitioner:       "murmur2",
		WriteTimeout:      10 * time.Second,
		DialTimeout:       5 * time.Second,
		MaxMessageBytes:   1 << 20,
		UnknownTopicGrace: 5 * time.Minute,
	}
	if !reflect.DeepEqual(*k.Kafka, wantKafka) {
		t.Errorf("kafka settings:\n got %+v\nwant %+v", *k.Kafka, wantKafka)
	}
	if f.Type != "file" || f.File == nil || f.Kafka != nil || f.HTTP != nil {
		t.Fatalf("file sink: %+v", f)
	}
	wantFile := FileSink{Path: "/var/log/sluice", RotateBytes: 64 << 20, RotateAge: time.Hour}
	if *f.File != wantFile {
		t.Errorf("file settings: got %+v, want %+v", *f.File, wantFile)
	}
	if h.Type != "http" || h.HTTP == nil || h.Kafka != nil || h.File != nil {
		t.Fatalf("http sink: %+v", h)
	}
	wantHTTP := HTTPSink{URL: "https://collector.example.com/v1/messages", Timeout: 10 * time.Second}
	if !reflect.DeepEqual(*h.HTTP, wantHTTP) {
		t.Errorf("http settings:\n got %+v\nwant %+v", *h.HTTP, wantHTTP)
	}
}

func TestLoadStdoutAndDiscardHaveNoTypeSettings(t *testing.T) {
	c := mustLoad(t, map[string]string{"SLUICE_SINKS": "stdout,discard"})
	for _, s := range c.SinkConfigs {
		if s.Type != s.Name || s.File != nil || s.Kafka != nil || s.HTTP != nil {
			t.Errorf("sink %s: %+v", s.Name, s)
		}
	}
}

func TestEmptyVariableMeansDefault(t *testing.T) {
	c := mustLoad(t, map[string]string{
		"SLUICE_SPOOL_DIR":       "",
		"SLUICE_SPOOL_MAX_BYTES": "",
		"SLUICE_SPOOL_SYNC":      "",
		"SLUICE_DRAIN_TIMEOUT":   "",
		"SLUICE_SINKS":           "",
		"SLUICE_STDOUT_TOPICS":   "",
		"SLUICE_STDOUT_TYPE":     "",
	})
	if c.SpoolDir != "sluice-spool" || c.SpoolMaxBytes != 1<<30 || c.SpoolSync != "always" || c.DrainTimeout != 20*time.Second {
		t.Errorf("core defaults not applied: %+v", c)
	}
	if len(c.SinkConfigs) != 1 || c.SinkConfigs[0].Type != "stdout" || !reflect.DeepEqual(c.SinkConfigs[0].Topics, List{"*"}) {
		t.Errorf("sink defaults not applied: %+v", c.SinkConfigs)
	}
}

func TestEmptyRequiredVariableIsMissing(t *testing.T) {
	lines := loadErr(t, map[string]string{"SLUICE_SINKS": "kafka", "SLUICE_KAFKA_BROKERS": ""})
	if l := lineFor(t, lines, "SLUICE_KAFKA_BROKERS"); !strings.Contains(l, "required") {
		t.Errorf("got %q", l)
	}
}

func TestEnumsAreCaseInsensitive(t *testing.T) {
	c := mustLoad(t, map[string]string{
		"SLUICE_LOG_LEVEL":            "DEBUG",
		"SLUICE_SPOOL_SYNC":           "Interval",
		"SLUICE_SINKS":                "main",
		"SLUICE_MAIN_TYPE":            "Kafka",
		"SLUICE_MAIN_BROKERS":         "b1:9092",
		"SLUICE_MAIN_SASL_MECHANISM":  "SCRAM-SHA-256",
		"SLUICE_MAIN_SASL_USERNAME":   "u",
		"SLUICE_MAIN_SASL_PASSWORD":   "p",
		"SLUICE_MAIN_COMPRESSION":     "ZSTD",
		"SLUICE_MAIN_BACKLOG_POLICY":  "DROP_OLDEST",
		"SLUICE_MAIN_TOPICS":          " orders , audit.* ",
		"SLUICE_MAIN_TOPIC_MAP":       "orders = orders-v2",
		"SLUICE_MAIN_TLS":             "true",
		"SLUICE_MAIN_TLS_SERVER_NAME": "kafka.internal",
	})
	s := c.SinkConfigs[0]
	if c.LogLevel != "debug" || c.SpoolSync != "interval" || s.Type != "kafka" || s.BacklogPolicy != "drop_oldest" ||
		s.Kafka.SASLMechanism != "scram-sha-256" || s.Kafka.Compression != "zstd" {
		t.Errorf("enums not lower-cased: %+v %+v %+v", c, s, s.Kafka)
	}
	if !reflect.DeepEqual(s.Topics, List{"orders", "audit.*"}) {
		t.Errorf("topics not trimmed: %q", s.Topics)
	}
	if !reflect.DeepEqual(s.Kafka.TopicMap, Map{"orders": "orders-v2"}) {
		t.Errorf("topic map: %q", s.Kafka.TopicMap)
	}
}

func TestListenUnixSocket(t *testing.T) {
	c := mustLoad(t, map[string]string{"SLUICE_LISTEN": "unix:/run/sluice/sluice.sock"})
	if c.Listen != "unix:/run/sluice/sluice.sock" {
		t.Errorf("Listen = %q", c.Listen)
	}
}

// TestEveryExampleLoads sets every variable (core, and the per-sink ones of
// one sink of each type) to its documented example and checks that Load
// reads each one: Redacted must show exactly the example.
func TestEveryExampleLoads(t *testing.T) {
	// One sink of each type with settings of its own (t0, t1, ...), and a
	// stdout sink s.
	sinkOf := map[string]string{}
	names := []string{}
	env := map[string]string{}
	for i, st := range sinkTypes {
		n := fmt.Sprintf("t%d", i)
		sinkOf[st.name] = n
		names = append(names, n)
	}
	names = append(names, "s")
	var want []string
	for _, v := range Variables() {
		// Exclusive alternatives of SASL_PASSWORD, TOKEN and CREDS_FILE.
		if strings.HasSuffix(v.Name, "_SASL_PASSWORD_FILE") || strings.HasSuffix(v.Name, "_TOKEN_FILE") || strings.HasSuffix(v.Name, "_NKEY_FILE") {
			continue
		}
		variants := v.PerType // a setting several types read: each type's example
		if variants == nil {
			variants = []Variable{v}
		}
		for _, v := range variants {
			var vars []string
			switch {
			case !strings.Contains(v.Name, sinkPlaceholder):
				vars = []string{v.Name}
			case v.SinkTypes == nil:
				for _, n := range names {
					vars = append(vars, strings.Replace(v.Name, sinkPlaceholder, strings.ToUpper(n), 1))
				}
			default:
				vars = []string{strings.Replace(v.Name, sinkPlaceholder, strings.ToUpper(sinkOf[v.SinkTypes[0]]), 1)}
			}
			for _, n := range vars {
				env[n] = v.Example
				shown := v.Example
				switch {
				case v.Secret:
					shown = redactedValue
				case strings.HasSuffix(v.Name, "_URL"): // secret:"userinfo"
					shown = redactURLs(v.Example)
				}
				want = append(want, n+"="+shown)
			}
		}
	}
	env["SLUICE_SINKS"] = strings.Join(names, ",")
	for _, st := range sinkTypes {
		env["SLUICE_"+strings.ToUpper(sinkOf[st.name])+"_TYPE"] = st.name
	}
	env["SLUICE_S_TYPE"] = "stdout"
	c := mustLoad(t, env)
	got := map[string]bool{}
	for _, l := range strings.Split(c.Redacted(), "\n") {
		got[l] = true
	}
	for _, w := range want {
		name, _, _ := strings.Cut(w, "=")
		if strings.HasSuffix(name, "_TYPE") || name == "SLUICE_SINKS" {
			continue
		}
		if !got[w] {
			t.Errorf("Redacted lacks %q", w)
		}
	}
	if len(c.SinkConfigs) != len(names) {
		t.Fatalf("sinks: %+v", c.SinkConfigs)
	}
	for i, st := range sinkTypes {
		for j, other := range sinkTypes {
			if held := other.settings(&c.SinkConfigs[i]) != nil; held != (i == j) {
				t.Errorf("sink %s (type %s): settings of %s held: %v", names[i], st.name, other.name, held)
			}
		}
	}
}

// TestExamplesDifferFromDefaults makes TestEveryExampleLoads prove that each
// variable is read: a value equal to the default would pass unread.
func TestExamplesDifferFromDefaults(t *testing.T) {
	for _, v := range Variables() {
		variants := v.PerType
		if variants == nil {
			variants = []Variable{v}
		}
		for _, v := range variants {
			if v.Example == "" || v.Description == "" {
				t.Errorf("%s: needs an example and a description", v.Name)
			}
			if v.Example == v.Default && !strings.HasSuffix(v.Name, "_ACKS") { // all is the right example
				t.Errorf("%s (%v): example %q equals the default", v.Name, v.SinkTypes, v.Example)
			}
		}
	}
}

func TestAMQP1Sink(t *testing.T) {
	c := mustLoad(t, map[string]string{
		"SLUICE_SINKS":        "artemis",
		"SLUICE_ARTEMIS_TYPE": "amqp1",
		"SLUICE_ARTEMIS_URL":  "amqp://sluice:s3cret@broker:5672",
	})
	a := c.SinkConfigs[0].AMQP1
	if a == nil || c.SinkConfigs[0].Kafka != nil {
		t.Fatalf("sink %+v", c.SinkConfigs[0])
	}
	want := AMQP1Sink{URL: "amqp://sluice:s3cret@broker:5672", Address: "{topic}", TargetCapabilities: List{"queue"},
		WriteTimeout: 10 * time.Second, DialTimeout: 5 * time.Second, MaxInFlight: 1000, UnknownAddressGrace: 5 * time.Minute}
	if !reflect.DeepEqual(*a, want) {
		t.Errorf("amqp1 settings:\n got %+v\nwant %+v", *a, want)
	}
	r := c.Redacted()
	if strings.Contains(r, "s3cret") || !strings.Contains(r, "SLUICE_ARTEMIS_URL=amqp://sluice:xxxxx@broker:5672") {
		t.Errorf("redacted:\n%s", r)
	}
}

// TestSinkTypesMatchEnum: every type in the enum of Sink.Type is declared in
// sinkTypes (or has no settings: stdout, discard), and every declared type
// is in the enum, so that loading, the reference, the unknown-variable check
// and Redacted know every type.
func TestSinkTypesMatchEnum(t *testing.T) {
	want := []string{"stdout", "discard"}
	for _, st := range sinkTypes {
		want = append(want, st.name)
	}
	got := typeNames()
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("enum of Sink.Type %q, declared types and stdout, discard %q", got, want)
	}
}
