package config

import (
	"strings"
	"testing"
)

func TestTypoIsCaughtWithSuggestion(t *testing.T) {
	tests := []struct{ env, want string }{
		{"SLUICE_SPOL_DIR", "unknown variable; did you mean SLUICE_SPOOL_DIR?"},
		{"SLUICE_LISTN", "did you mean SLUICE_LISTEN?"},
		{"SLUICE_SPOOL_DRI", "did you mean SLUICE_SPOOL_DIR?"}, // adjacent swap
		{"SLUICE_STDOUT_TOPIC", `unknown setting TOPIC for sink "stdout" (type stdout); did you mean SLUICE_STDOUT_TOPICS?`},
		{"SLUICE_SPOOL_COLOUR", "unknown variable"},
		{"SLUICE_WHATEVER", "unknown variable"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			lines := loadErr(t, map[string]string{tt.env: "x"})
			if l := lineFor(t, lines, tt.env); !strings.HasSuffix(l, tt.want) {
				t.Errorf("got %q, want it to end with %q", l, tt.want)
			}
			if len(lines) != 1 {
				t.Errorf("want one line, got %q", lines)
			}
		})
	}
}

func TestLowerCaseVariableIsCaught(t *testing.T) {
	lines := loadErr(t, map[string]string{"sluice_spool_dir": "/tmp"})
	if l := lineFor(t, lines, "sluice_spool_dir"); !strings.Contains(l, "did you mean SLUICE_SPOOL_DIR?") {
		t.Errorf("got %q", l)
	}
}

func TestServiceLinkVariablesAreIgnored(t *testing.T) {
	mustLoad(t, map[string]string{
		"SLUICE_PORT":                       "tcp://10.0.0.1:7101",
		"SLUICE_PORT_7101_TCP":              "tcp://10.0.0.1:7101",
		"SLUICE_PORT_7101_TCP_ADDR":         "10.0.0.1",
		"SLUICE_PORT_7101_TCP_PORT":         "7101",
		"SLUICE_PORT_7101_TCP_PROTO":        "tcp",
		"SLUICE_SERVICE_HOST":               "10.0.0.1",
		"SLUICE_SERVICE_PORT":               "7101",
		"SLUICE_SERVICE_PORT_HTTP":          "7101",
		"SLUICE_METRICS_SERVICE_HOST":       "10.0.0.2",
		"SLUICE_METRICS_SERVICE_PORT":       "7103",
		"SLUICE_METRICS_SERVICE_PORT_ADMIN": "7103",
		"SLUICE_METRICS_PORT":               "tcp://10.0.0.2:7103",
		"SLUICE_METRICS_PORT_7103_UDP_ADDR": "10.0.0.2",
		"SLUICE_STDOUT_SERVICE_HOST":        "10.0.0.3", // a Service named like a configured sink
	})
}

func TestServiceLinkLookalikesAreNotIgnored(t *testing.T) {
	for _, name := range []string{"SLUICE_PORT_HTTP", "SLUICE_PORTS", "SLUICE_SERVICE_HOSTS", "SLUICE_PORT_7101"} {
		if isServiceLink(name) {
			t.Errorf("%s taken for a service link", name)
		}
	}
}

// TestNoSettingLooksLikeServiceLink guarantees that ignoring service links
// never hides a real setting.
func TestNoSettingLooksLikeServiceLink(t *testing.T) {
	for _, v := range Variables() {
		for _, sink := range []string{"A", "KAFKA", "MAIN2"} {
			name := strings.Replace(v.Name, sinkPlaceholder, sink, 1)
			if isServiceLink(name) {
				t.Errorf("%s has the shape of a Kubernetes service-link variable", name)
			}
		}
		for _, suffix := range []string{"_PORT", "_SERVICE_HOST", "_SERVICE_PORT"} {
			if strings.HasSuffix(v.Name, suffix) || strings.Contains(v.Name, suffix+"_") {
				t.Errorf("%s contains %s", v.Name, suffix)
			}
		}
	}
}

func TestSinkVariablesByType(t *testing.T) {
	file := map[string]string{"SLUICE_SINKS": "out", "SLUICE_OUT_TYPE": "file", "SLUICE_OUT_PATH": "/var/log/sluice"}

	env := map[string]string{"SLUICE_OUT_ROTATE_BYTES": "1MiB", "SLUICE_OUT_TOPICS": "orders"}
	for k, v := range file {
		env[k] = v
	}
	c := mustLoad(t, env)
	if c.SinkConfigs[0].File.RotateBytes != 1<<20 || c.SinkConfigs[0].Topics[0] != "orders" {
		t.Errorf("file sink settings not read: %+v %+v", c.SinkConfigs[0], c.SinkConfigs[0].File)
	}

	for _, wrong := range []struct{ name, typ string }{
		{"SLUICE_OUT_BROKERS", "kafka"},
		{"SLUICE_OUT_SASL_PASSWORD", "kafka"},
		{"SLUICE_OUT_URL", "amqp1, http, nats, rabbitmq or sqs"},
		{"SLUICE_OUT_SUBJECT", "nats"},
	} {
		t.Run(wrong.name, func(t *testing.T) {
			env := map[string]string{wrong.name: "x"}
			for k, v := range file {
				env[k] = v
			}
			lines := loadErr(t, env)
			want := "a setting of " + wrong.typ + ` sinks, but sink "out" has type file`
			if l := lineFor(t, lines, wrong.name); !strings.Contains(l, want) {
				t.Errorf("got %q, want %q", l, want)
			}
		})
	}
}

func TestVariableOfUnlistedSink(t *testing.T) {
	lines := loadErr(t, map[string]string{"SLUICE_DR_BROKERS": "b1:9092"})
	if l := lineFor(t, lines, "SLUICE_DR_BROKERS"); l != `SLUICE_DR_BROKERS: sink "dr" is not in SLUICE_SINKS` {
		t.Errorf("got %q", l)
	}
}

func TestMisspelledSinkNameGetsSuggestion(t *testing.T) {
	lines := loadErr(t, map[string]string{
		"SLUICE_SINKS": "main", "SLUICE_MAIN_TYPE": "kafka", "SLUICE_MAIN_BROKERS": "b1:9092",
		"SLUICE_MIAN_CLIENT_ID": "x",
	})
	if l := lineFor(t, lines, "SLUICE_MIAN_CLIENT_ID"); !strings.Contains(l, `sink "mian" is not in SLUICE_SINKS; did you mean SLUICE_MAIN_CLIENT_ID?`) {
		t.Errorf("got %q", l)
	}
}

// An invalid TYPE is reported once; the sink's other variables are not
// reported as unknown on top of it.
func TestInvalidTypeDoesNotCascade(t *testing.T) {
	lines := loadErr(t, map[string]string{
		"SLUICE_SINKS": "main", "SLUICE_MAIN_TYPE": "kafak", "SLUICE_MAIN_BROKERS": "b1:9092",
	})
	if len(lines) != 1 {
		t.Errorf("want one error, got %q", lines)
	}
	lineFor(t, lines, "SLUICE_MAIN_TYPE")
}

func TestEmptyUnknownVariableIsIgnored(t *testing.T) {
	mustLoad(t, map[string]string{"SLUICE_SPOL_DIR": ""})
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "abc", 0},
		{"", "abc", 3},
		{"abc", "", 3},
		{"SPOL", "SPOOL", 1},
		{"DRI", "DIR", 1},
		{"kitten", "sitting", 3},
		{"ab", "ba", 1},
		{"abc", "ca", 3},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
