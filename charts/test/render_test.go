package test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const (
	libraryDir = "../sluice"
	exampleDir = "../sluice-example"
	namespace  = "shop"
)

// loadExample loads the example chart from its directory with the library
// chart, also from its directory, as its dependency. A packaged copy left in
// charts/ by `helm dependency build` is replaced, so the test always renders
// the library as it is in the work tree.
func loadExample(t *testing.T) *chart.Chart {
	t.Helper()
	ex, err := loader.LoadDir(exampleDir)
	if err != nil {
		t.Fatalf("load %s: %v", exampleDir, err)
	}
	lib, err := loader.LoadDir(libraryDir)
	if err != nil {
		t.Fatalf("load %s: %v", libraryDir, err)
	}
	deps := []*chart.Chart{lib}
	for _, d := range ex.Dependencies() {
		if d.Name() != lib.Name() {
			deps = append(deps, d)
		}
	}
	ex.SetDependencies(deps...)
	return ex
}

// rendered is the output of one render: the values Helm rendered with, the
// notes and every manifest decoded into its Kubernetes type.
type rendered struct {
	values      chartutil.Values // coalesced values (.Values)
	notes       string
	deployment  *appsv1.Deployment
	statefulSet *appsv1.StatefulSet
	services    []*corev1.Service
	configMaps  []*corev1.ConfigMap
	podMonitors []*monitoringv1.PodMonitor
}

// render renders the example chart as `helm install --dry-run` does, with
// schema validation (values.schema.json of both charts) and the engine in
// strict mode (a missing value is an error), then strict-decodes every
// manifest: an unknown or duplicate field fails.
func render(t *testing.T, vals map[string]any) (*rendered, error) {
	t.Helper()
	chrt := loadExample(t)
	if err := chartutil.ProcessDependenciesWithMerge(chrt, vals); err != nil {
		return nil, fmt.Errorf("process dependencies: %w", err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = chartutil.KubeVersion{Version: "v1.31.0", Major: "1", Minor: "31"}
	opts := chartutil.ReleaseOptions{Name: "rel", Namespace: namespace, Revision: 1, IsInstall: true}
	top, err := chartutil.ToRenderValues(chrt, vals, opts, caps)
	if err != nil {
		return nil, err
	}
	files, err := engine.Engine{Strict: true}.Render(chrt, top)
	if err != nil {
		return nil, err
	}
	values, err := top.Table("Values")
	if err != nil {
		t.Fatalf("render values: %v", err)
	}
	r := &rendered{values: values}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") {
			if strings.HasPrefix(name, chrt.Name()+"/templates/") {
				r.notes = files[name]
			}
			continue
		}
		for _, doc := range releaseutil.SplitManifests(files[name]) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			if err := r.add(doc); err != nil {
				t.Fatalf("%s: %v\n%s", name, err, doc)
			}
		}
	}
	return r, nil
}

// add strict-decodes one manifest into its type.
func (r *rendered) add(doc string) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
		return err
	}
	var obj any
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		r.deployment = &appsv1.Deployment{}
		obj = r.deployment
	case "apps/v1 StatefulSet":
		r.statefulSet = &appsv1.StatefulSet{}
		obj = r.statefulSet
	case "v1 Service":
		s := &corev1.Service{}
		r.services = append(r.services, s)
		obj = s
	case "v1 ConfigMap":
		c := &corev1.ConfigMap{}
		r.configMaps = append(r.configMaps, c)
		obj = c
	case "monitoring.coreos.com/v1 PodMonitor":
		p := &monitoringv1.PodMonitor{}
		r.podMonitors = append(r.podMonitors, p)
		obj = p
	default:
		return fmt.Errorf("unexpected manifest %s %s", tm.APIVersion, tm.Kind)
	}
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		return fmt.Errorf("strict decode %s: %w", tm.Kind, err)
	}
	return nil
}

// podSpec returns the pod template of the workload.
func (r *rendered) podSpec(t *testing.T) *corev1.PodTemplateSpec {
	t.Helper()
	switch {
	case r.deployment != nil && r.statefulSet == nil:
		return &r.deployment.Spec.Template
	case r.statefulSet != nil && r.deployment == nil:
		return &r.statefulSet.Spec.Template
	}
	t.Fatalf("want exactly one Deployment or StatefulSet")
	return nil
}

// mustRender renders and fails the test on an error.
func mustRender(t *testing.T, vals map[string]any) *rendered {
	t.Helper()
	r, err := render(t, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return r
}

// readValues parses YAML values.
func readValues(t *testing.T, s string) map[string]any {
	t.Helper()
	v, err := chartutil.ReadValues([]byte(s))
	if err != nil {
		t.Fatalf("parse values: %v\n%s", err, s)
	}
	return v.AsMap()
}

// ciValueFiles lists charts/sluice-example/ci/*-values.yaml.
func ciValueFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(exampleDir, "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no ci values files: %v", err)
	}
	return files
}

// readValuesFile parses a values file.
func readValuesFile(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return readValues(t, string(b))
}

// container returns the named container of a list, or nil.
func container(list []corev1.Container, name string) *corev1.Container {
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}
