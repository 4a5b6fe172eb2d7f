package config

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kelseyhightower/envconfig"
)

func TestVariablesListCoreNames(t *testing.T) {
	byName := map[string]Variable{}
	seen := map[string]bool{} // name and sink types: a setting name may serve several types
	for _, v := range Variables() {
		key := v.Name + " " + strings.Join(v.SinkTypes, ",")
		if seen[key] {
			t.Errorf("%s listed twice", key)
		}
		seen[key] = true
		byName[v.Name] = v
	}
	for _, name := range []string{
		"LISTEN", "ADMIN_LISTEN", "AUTH_TOKEN",
		"SPOOL_DIR", "SPOOL_MAX_BYTES", "SPOOL_SEGMENT_BYTES", "SPOOL_SYNC", "SPOOL_SYNC_INTERVAL", "SPOOL_FULL_POLICY", "SPOOL_APPEND_TIMEOUT",
		"DEADLETTER_MAX_BYTES", "DRAIN_TIMEOUT", "DRAIN_ACCEPT", "LOG_LEVEL", "LOG_FORMAT",
		"MAX_MESSAGE_BYTES", "MAX_REQUEST_BYTES", "MAX_HEADER_BYTES", "MAX_HEADERS", "MAX_INFLIGHT_BYTES", "MAX_CONNECTIONS",
		"ACK_TIMEOUT", "ACK_TIMEOUT_MAX", "READ_TIMEOUT", "WRITE_TIMEOUT", "IDLE_TIMEOUT", "RECORD_CACHE", "SINKS",
	} {
		v, ok := byName["SLUICE_"+name]
		if !ok {
			t.Errorf("SLUICE_%s missing", name)
			continue
		}
		if v.SinkTypes != nil {
			t.Errorf("%s: SinkTypes = %q, want nil", v.Name, v.SinkTypes)
		}
	}
	if v := byName["SLUICE_AUTH_TOKEN"]; !v.Secret {
		t.Errorf("SLUICE_AUTH_TOKEN is not secret")
	}
	if v := byName["SLUICE_SPOOL_MAX_BYTES"]; v.Default != "1GiB" {
		t.Errorf("SLUICE_SPOOL_MAX_BYTES default %q", v.Default)
	}
	if v := byName["SLUICE_SPOOL_SYNC"]; !strings.Contains(v.Description, "always|interval|never") {
		t.Errorf("SLUICE_SPOOL_SYNC description lacks its values: %q", v.Description)
	}
}

func TestVariablesListSinkNames(t *testing.T) {
	// A setting name several types share (URL) is listed once per type;
	// byName merges their SinkTypes.
	byName := map[string]Variable{}
	for _, v := range Variables() {
		if prev, ok := byName[v.Name]; ok && v.SinkTypes != nil {
			v.SinkTypes = append(slices.Clone(prev.SinkTypes), v.SinkTypes...)
			v.Required = v.Required && prev.Required
			v.Secret = v.Secret || prev.Secret
		}
		byName[v.Name] = v
	}
	sinkVars := map[string][]string{
		"TYPE": nil, "TOPICS": nil, "MAX_BACKLOG_BYTES": nil, "BACKLOG_POLICY": nil, "MAX_AGE": nil,
		"BATCH_MESSAGES": nil, "BATCH_BYTES": nil, "LINGER": nil, "RETRY_MIN": nil, "RETRY_MAX": nil,
		"PATH": {"file"}, "ROTATE_BYTES": {"file"}, "ROTATE_AGE": {"file"},
		"BROKERS": {"kafka"}, "CLIENT_ID": {"kafka"}, "ACKS": {"kafka"}, "COMPRESSION": {"kafka"}, "PARTITIONER": {"kafka"},
		"WRITE_TIMEOUT": {"kafka", "rabbitmq", "amqp1"}, "DIAL_TIMEOUT": {"kafka", "rabbitmq", "amqp1"}, "MAX_MESSAGE_BYTES": {"kafka"}, "TOPIC_PREFIX": {"kafka"},
		"TOPIC_MAP": {"kafka"}, "DEADLETTER_TOPIC": {"kafka"}, "UNKNOWN_TOPIC_GRACE": {"kafka"}, "TLS": {"kafka"},
		"TLS_CA_FILE": {"kafka", "rabbitmq", "amqp1", "nats"}, "TLS_CERT_FILE": {"kafka", "rabbitmq", "nats"}, "TLS_KEY_FILE": {"kafka", "rabbitmq", "nats"},
		"TLS_SERVER_NAME": {"kafka", "rabbitmq", "amqp1", "nats"}, "TLS_INSECURE_SKIP_VERIFY": {"kafka", "nats"},
		"SASL_MECHANISM": {"kafka"}, "SASL_USERNAME": {"kafka"}, "SASL_PASSWORD": {"kafka"}, "SASL_PASSWORD_FILE": {"kafka"},
		"URL": {"http", "rabbitmq", "amqp1", "sqs", "nats"}, "TOKEN": {"http"}, "TOKEN_FILE": {"http"}, "HEADERS": {"http"}, "GZIP": {"http"}, "TIMEOUT": {"http"},
		"EXCHANGE": {"rabbitmq"}, "ROUTING_KEY": {"rabbitmq"}, "HEARTBEAT": {"rabbitmq"}, "RECONNECT_MAX": {"rabbitmq"}, "UNROUTABLE_GRACE": {"rabbitmq"},
		"ADDRESS": {"amqp1"}, "TARGET_CAPABILITIES": {"amqp1"}, "MAX_IN_FLIGHT": {"amqp1", "sqs"}, "UNKNOWN_ADDRESS_GRACE": {"amqp1"},
		"REGION": {"sqs"}, "ENDPOINT": {"sqs"}, "REQUEST_BYTES": {"sqs"}, "REQUEST_TIMEOUT": {"sqs"}, "GROUP_ID": {"sqs"},
		"SUBJECT": {"nats"}, "ACK_TIMEOUT": {"nats"}, "MAX_PENDING": {"nats"}, "CONNECT_TIMEOUT": {"nats"}, "RECONNECT_WAIT": {"nats"},
		"NO_STREAM_GRACE": {"nats"}, "CREDS_FILE": {"nats"}, "NKEY_FILE": {"nats"},
		"VISIBILITY": {"queue"}, "MAX_ATTEMPTS": {"queue"}, "ORDERED": {"queue"},
	}
	n := 0
	for setting, types := range sinkVars {
		name := "SLUICE_<NAME>_" + setting
		v, ok := byName[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if !slices.Equal(v.SinkTypes, types) || (types == nil) != (v.SinkTypes == nil) {
			t.Errorf("%s: SinkTypes = %q, want %q", name, v.SinkTypes, types)
		}
		n++
	}
	for name := range byName {
		if strings.Contains(name, "<NAME>") {
			n--
		}
	}
	if n != 0 {
		t.Errorf("Variables has %d per-sink variables this test does not know", -n)
	}
	for _, name := range []string{"SLUICE_<NAME>_SASL_PASSWORD", "SLUICE_<NAME>_TOKEN", "SLUICE_<NAME>_HEADERS"} {
		if !byName[name].Secret {
			t.Errorf("%s is not secret", name)
		}
	}
	for _, name := range []string{"SLUICE_<NAME>_PATH", "SLUICE_<NAME>_BROKERS", "SLUICE_<NAME>_URL"} {
		if !byName[name].Required {
			t.Errorf("%s is not required", name)
		}
	}
	if d := byName["SLUICE_<NAME>_TYPE"].Default; d != "<name>" {
		t.Errorf("TYPE default %q", d)
	}
	// A setting two types read: one entry, each type's own text.
	url := byName["SLUICE_<NAME>_URL"]
	if len(url.PerType) < 2 || url.PerType[1].SinkTypes[0] != "rabbitmq" || !strings.Contains(url.Description, "http: ") ||
		!strings.Contains(url.Description, "rabbitmq: Broker URL") || !strings.Contains(url.Description, "nats: NATS server") ||
		!strings.HasPrefix(url.PerType[1].Example, "amqps://") {
		t.Errorf("URL: %+v", url)
	}
	if wt := byName["SLUICE_<NAME>_WRITE_TIMEOUT"]; wt.Default != "10s" {
		t.Errorf("WRITE_TIMEOUT default %q (the same for every type)", wt.Default)
	}
	if d := byName["SLUICE_<NAME>_MAX_IN_FLIGHT"].Default; d != "1000 (amqp1), 8 (sqs)" {
		t.Errorf("MAX_IN_FLIGHT default %q (each type's own)", d)
	}
	// Types that describe a shared setting alike share one text.
	if d := byName["SLUICE_<NAME>_TLS_KEY_FILE"].Description; d != "PEM private key of TLS_CERT_FILE." {
		t.Errorf("TLS_KEY_FILE description %q", d)
	}
}

// TestNamesMatchEnvconfig checks that the names this package derives (for
// Variables, the unknown-variable check and error messages) are the names
// envconfig reads.
func TestNamesMatchEnvconfig(t *testing.T) {
	specs := []any{&Config{}, &Sink{}}
	for _, st := range sinkTypes {
		specs = append(specs, reflect.New(st.spec).Interface())
	}
	for _, spec := range specs {
		var buf bytes.Buffer
		if err := envconfig.Usagef("SLUICE", spec, &buf, "{{range .}}{{usage_key .}}\n{{end}}"); err != nil {
			t.Fatal(err)
		}
		want := strings.Fields(buf.String())
		var got []string
		for _, s := range settings(reflect.TypeOf(spec).Elem()) {
			got = append(got, "SLUICE_"+s)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%T:\n got %q\nwant %q", spec, got, want)
		}
	}
}

func TestReferenceListsEveryVariable(t *testing.T) {
	ref := Reference()
	lines := strings.Split(strings.TrimSuffix(ref, "\n"), "\n")
	vars := Variables()
	if len(lines) != len(vars)+2 {
		t.Errorf("Reference has %d lines for %d variables", len(lines), len(vars))
	}
	for i, v := range vars {
		row := lines[i+2]
		if !strings.HasPrefix(row, "| `"+v.Name+"` |") {
			t.Errorf("row %d = %q, want %s", i, row, v.Name)
		}
		if strings.Count(strings.ReplaceAll(row, `\|`, ""), "|") != 5 {
			t.Errorf("row %q does not have 4 cells", row)
		}
	}
	if strings.Contains(strings.ReplaceAll(ref, "`SLUICE_<NAME>", ""), "<NAME>") {
		t.Errorf("an unescaped <NAME> outside code would vanish as an HTML tag")
	}
}

func TestRedactedHidesSecrets(t *testing.T) {
	secrets := []string{"auth-s3cret", "sasl-s3cret", "token-s3cret", "header-s3cret", "url-s3cret"}
	c := mustLoad(t, map[string]string{
		"SLUICE_AUTH_TOKEN":          secrets[0],
		"SLUICE_SINKS":               "main,web",
		"SLUICE_MAIN_TYPE":           "kafka",
		"SLUICE_MAIN_BROKERS":        "b1:9092",
		"SLUICE_MAIN_SASL_MECHANISM": "plain",
		"SLUICE_MAIN_SASL_USERNAME":  "sluice",
		"SLUICE_MAIN_SASL_PASSWORD":  secrets[1],
		"SLUICE_WEB_TYPE":            "http",
		"SLUICE_WEB_TOKEN":           secrets[2],
		"SLUICE_WEB_HEADERS":         "X-Api-Key=" + secrets[3],
		"SLUICE_WEB_URL":             "https://user:" + secrets[4] + "@c.example.com/in",
	})
	out := c.Redacted()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("Redacted shows secret %q:\n%s", s, out)
		}
	}
	for _, line := range []string{
		"SLUICE_AUTH_TOKEN=<redacted>",
		"SLUICE_MAIN_SASL_PASSWORD=<redacted>",
		"SLUICE_MAIN_SASL_USERNAME=sluice",
		"SLUICE_WEB_TOKEN=<redacted>",
		"SLUICE_WEB_HEADERS=<redacted>",
		"SLUICE_WEB_URL=https://user:xxxxx@c.example.com/in",
		"SLUICE_WEB_TOKEN_FILE=",
		"SLUICE_SINKS=main,web",
	} {
		if !strings.Contains(out, "\n"+line+"\n") {
			t.Errorf("Redacted lacks line %q:\n%s", line, out)
		}
	}
	if lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); !slices.IsSorted(lines) {
		t.Errorf("Redacted is not sorted:\n%s", out)
	}
}

func TestRedactedHidesURLCredentials(t *testing.T) {
	c := mustLoad(t, map[string]string{
		"SLUICE_SINKS":     "a,b,c",
		"SLUICE_A_TYPE":    "nats",
		"SLUICE_A_URL":     "nats://sluice:pw-s3cret@n1:4222, nats://sluice:pw2-s3cret@n2:4222",
		"SLUICE_B_TYPE":    "nats",
		"SLUICE_B_URL":     "tls://tok-s3cret@n1:4222",
		"SLUICE_C_TYPE":    "nats",
		"SLUICE_C_URL":     "nats://n1:4222,nats://n2:4222",
		"SLUICE_C_SUBJECT": "events.{topic}.{key}",
	})
	out := c.Redacted()
	if strings.Contains(out, "s3cret") {
		t.Fatalf("Redacted shows a credential:\n%s", out)
	}
	for _, line := range []string{
		"SLUICE_A_URL=nats://sluice:xxxxx@n1:4222,nats://sluice:xxxxx@n2:4222",
		"SLUICE_B_URL=tls://xxxxx@n1:4222",
		"SLUICE_C_URL=nats://n1:4222,nats://n2:4222",
		"SLUICE_C_SUBJECT=events.{topic}.{key}",
	} {
		if !strings.Contains(out, "\n"+line+"\n") {
			t.Errorf("Redacted lacks line %q:\n%s", line, out)
		}
	}
}

func TestRedactedShowsEmptySecretsEmpty(t *testing.T) {
	out := mustLoad(t, nil).Redacted()
	if !strings.Contains(out, "\nSLUICE_AUTH_TOKEN=\n") {
		t.Errorf("empty secret not shown empty:\n%s", out)
	}
}

func TestRedactedQuotesOddValues(t *testing.T) {
	c := mustLoad(t, map[string]string{"SLUICE_SPOOL_DIR": "/var/lib/my spool"})
	if out := c.Redacted(); !strings.Contains(out, "\nSLUICE_SPOOL_DIR=\"/var/lib/my spool\"\n") {
		t.Errorf("value with a space not quoted:\n%s", out)
	}
}

func TestErrorsNeverShowSecrets(t *testing.T) {
	lines := loadErr(t, map[string]string{
		"SLUICE_SINKS":       "web",
		"SLUICE_WEB_TYPE":    "http",
		"SLUICE_WEB_URL":     "https://c.example.com/in",
		"SLUICE_WEB_HEADERS": "X-Api-Key:hunter2",
	})
	if l := lineFor(t, lines, "SLUICE_WEB_HEADERS"); strings.Contains(l, "hunter2") {
		t.Errorf("error shows the secret: %q", l)
	}
}
