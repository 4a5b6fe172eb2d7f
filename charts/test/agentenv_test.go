package test

import (
	"os"
	"strings"
	"testing"

	"github.com/sluiceio/sluice/config"
	corev1 "k8s.io/api/core/v1"
)

// secretPlaceholder stands in for a value the kubelet would read from a Secret.
const secretPlaceholder = "placeholder-from-secret"

// memLimitPlaceholder stands for limits.memory in bytes, as the kubelet
// resolves GOMEMLIMIT's resourceFieldRef.
const memLimitPlaceholder = "134217728"

// loadAgentConfig sets the container's environment in this process, exactly
// as rendered (values read from Secrets replaced by a placeholder), and loads
// it with the agent's own config package: a variable the agent does not know,
// or a value it refuses, fails here as it would fail the agent at start-up.
// envFrom sources cannot be resolved at render time and are left out.
func loadAgentConfig(t *testing.T, c *corev1.Container) (*config.Config, error) {
	t.Helper()
	clearSluiceEnv(t)
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			switch {
			case e.ValueFrom.SecretKeyRef != nil:
				v = secretPlaceholder
			case e.ValueFrom.ResourceFieldRef != nil && e.Name == "GOMEMLIMIT":
				v = memLimitPlaceholder
			default:
				t.Fatalf("env %s: unexpected valueFrom", e.Name)
			}
		}
		t.Setenv(e.Name, v)
	}
	if len(c.EnvFrom) > 0 {
		t.Logf("envFrom of container %s not resolved: %d source(s)", c.Name, len(c.EnvFrom))
	}
	return config.Load()
}

// clearSluiceEnv removes SLUICE_* variables of the test process for the
// duration of the test (t.Setenv restores them afterwards).
func clearSluiceEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "SLUICE_") {
			t.Setenv(name, "")
			if err := os.Unsetenv(name); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// envValue returns the value of a plain env var of the container.
func envValue(c *corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom == nil {
			return e.Value, true
		}
	}
	return "", false
}
