package test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chartutil"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestPlainYAMLSnippet checks the "Without Helm" pod spec of the library
// README like a rendered one: strict decoding, the agent's config, probes,
// sizeLimit and grace period.
func TestPlainYAMLSnippet(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(libraryDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Without Helm\n")
	if !ok {
		t.Fatal("README has no \"## Without Helm\" section")
	}
	_, block, ok := strings.Cut(section, "```yaml\n")
	if !ok {
		t.Fatal("no yaml block in \"Without Helm\"")
	}
	block, _, _ = strings.Cut(block, "```")
	var doc struct {
		Spec corev1.PodSpec `json:"spec"`
	}
	if err := yaml.UnmarshalStrict([]byte(block), &doc); err != nil {
		t.Fatalf("snippet does not decode as a pod spec: %v", err)
	}
	spec := &doc.Spec
	c := container(spec.InitContainers, "sluice")
	if c == nil {
		t.Fatal("snippet has no sluice init container")
	}
	cfg, err := loadAgentConfig(t, c)
	if err != nil {
		t.Fatalf("the agent refuses the snippet's environment:\n%v", err)
	}
	_, adminPort := splitHostPort(t, "SLUICE_ADMIN_LISTEN", cfg.AdminListen)
	checkProbe(t, c, "startupProbe", c.StartupProbe, "/readyz", adminPort)
	checkProbe(t, c, "livenessProbe", c.LivenessProbe, "/livez", adminPort)
	checkProbe(t, c, "readinessProbe", c.ReadinessProbe, "/readyz", adminPort)
	mount := spoolMount(t, c, cfg.SpoolDir)
	vol := findVolume(spec.Volumes, mount.Name)
	if vol == nil || vol.EmptyDir == nil || vol.EmptyDir.SizeLimit == nil {
		t.Fatalf("snippet: spool volume %s is not an emptyDir with a sizeLimit", mount.Name)
	}
	need := int64(cfg.SpoolMaxBytes) + 2*int64(cfg.SpoolSegmentBytes) + int64(cfg.DeadletterMaxBytes)
	if vol.EmptyDir.SizeLimit.Value() < need {
		t.Errorf("snippet sizeLimit %s < %d bytes", vol.EmptyDir.SizeLimit, need)
	}
	const appShutdown = 5 * time.Second // as the README says
	if spec.TerminationGracePeriodSeconds == nil ||
		time.Duration(*spec.TerminationGracePeriodSeconds)*time.Second < appShutdown+cfg.DrainTimeout+graceMargin {
		t.Errorf("snippet grace period too short for drain %v", cfg.DrainTimeout)
	}

	// The snippet is what the chart renders with its defaults.
	r := mustRender(t, readValues(t, "app:\n  shutdownSeconds: 5\n"))
	pod := r.podSpec(t)
	rc := container(pod.Spec.InitContainers, "sluice")
	if got := *pod.Spec.TerminationGracePeriodSeconds; got != *spec.TerminationGracePeriodSeconds {
		t.Errorf("snippet grace period %d, chart renders %d", *spec.TerminationGracePeriodSeconds, got)
	}
	if got := spoolVolume(t, pod).EmptyDir.SizeLimit.String(); got != vol.EmptyDir.SizeLimit.String() {
		t.Errorf("snippet sizeLimit %s, chart renders %s", vol.EmptyDir.SizeLimit, got)
	}
	if !reflect.DeepEqual(rc.SecurityContext, c.SecurityContext) {
		t.Errorf("snippet securityContext differs from the chart's:\n%+v\n%+v", c.SecurityContext, rc.SecurityContext)
	}
	for _, e := range rc.Env {
		if e.ValueFrom != nil {
			var got *corev1.EnvVarSource
			for _, se := range c.Env {
				if se.Name == e.Name {
					got = se.ValueFrom
				}
			}
			if !reflect.DeepEqual(got, e.ValueFrom) {
				t.Errorf("snippet %s valueFrom %+v, chart renders %+v", e.Name, got, e.ValueFrom)
			}
			continue
		}
		if v, ok := envValue(c, e.Name); !ok || v != e.Value {
			t.Errorf("snippet %s = %q, chart renders %q", e.Name, v, e.Value)
		}
	}
}

// TestExampleShowsLibraryDefaults: the example's values.yaml documents every
// library value with its default, so its sluice block equals the library's
// values.yaml.
func TestExampleShowsLibraryDefaults(t *testing.T) {
	lib, err := chartutil.ReadValuesFile(filepath.Join(libraryDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ex, err := chartutil.ReadValuesFile(filepath.Join(exampleDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ex.Table("sluice")
	if err != nil {
		t.Fatalf("example values.yaml has no sluice block: %v", err)
	}
	if !reflect.DeepEqual(map[string]any(got), lib.AsMap()) {
		gy, _ := yaml.Marshal(got)
		ly, _ := yaml.Marshal(lib.AsMap())
		t.Errorf("example sluice values differ from the library defaults:\nexample:\n%s\nlibrary:\n%s", gy, ly)
	}
}
