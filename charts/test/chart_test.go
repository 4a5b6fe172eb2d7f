package test

import (
	"encoding/json"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/config"
	"helm.sh/helm/v3/pkg/chart/loader"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// graceMargin is the margin the charts add to app shutdown + drain timeout.
const graceMargin = 10 * time.Second

// TestCIValues renders the example chart with each ci/*-values.yaml and checks
// the pod against what the agent needs.
func TestCIValues(t *testing.T) {
	for _, file := range ciValueFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			r := mustRender(t, readValuesFile(t, file))
			checkPod(t, r)
		})
	}
}

// TestDefaultValues renders the example chart with its defaults.
func TestDefaultValues(t *testing.T) {
	r := mustRender(t, map[string]any{})
	checkPod(t, r)
	if r.deployment == nil {
		t.Fatal("default values: want a Deployment")
	}
	pod := r.podSpec(t)
	vol := spoolVolume(t, pod)
	if vol.EmptyDir == nil || vol.EmptyDir.SizeLimit == nil {
		t.Fatalf("default spool: want an emptyDir with a sizeLimit, got %+v", vol.VolumeSource)
	}
	// 1GiB + 2 x 1MiB + 64MiB = 1090MiB, plus 10% (109MiB).
	if got := vol.EmptyDir.SizeLimit.String(); got != "1199Mi" {
		t.Errorf("default sizeLimit = %s, want 1199Mi", got)
	}
	if len(r.podMonitors) != 0 || len(r.configMaps) != 0 {
		t.Errorf("PodMonitor and dashboard are off by default, got %d and %d", len(r.podMonitors), len(r.configMaps))
	}
	// The default memory limit reaches the Go runtime as GOMEMLIMIT.
	found := false
	for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
		for _, e := range c.Env {
			if e.Name == "GOMEMLIMIT" {
				found = e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory"
			}
		}
	}
	if !found {
		t.Error("default values: want GOMEMLIMIT from the container's limits.memory")
	}
}

// checkPod asserts everything that must hold for any valid values.
func checkPod(t *testing.T, r *rendered) {
	t.Helper()
	v := r.values
	native := boolValue(t, v, "sluice.native")
	pod := r.podSpec(t)
	spec := &pod.Spec

	// Placement: native sidecar in initContainers with restartPolicy Always,
	// classic sidecar in containers.
	initC, appC := container(spec.InitContainers, "sluice"), container(spec.Containers, "sluice")
	var c *corev1.Container
	if native {
		if initC == nil || appC != nil {
			t.Fatalf("native: want sluice in initContainers only (init %v, containers %v)", initC != nil, appC != nil)
		}
		c = initC
		if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			t.Errorf("native sidecar: restartPolicy = %v, want Always", c.RestartPolicy)
		}
	} else {
		if appC == nil || initC != nil {
			t.Fatalf("legacy: want sluice in containers only (init %v, containers %v)", initC != nil, appC != nil)
		}
		c = appC
		if c.RestartPolicy != nil {
			t.Errorf("classic sidecar: restartPolicy must not be set, got %v", *c.RestartPolicy)
		}
		if got, _ := envValue(c, "SLUICE_DRAIN_ACCEPT"); got != "true" {
			t.Errorf("classic sidecar: SLUICE_DRAIN_ACCEPT = %q, want true", got)
		}
	}
	app := container(spec.Containers, "app")
	if app == nil {
		t.Fatal("no app container")
	}

	// The rendered environment is accepted by the agent's own config.
	cfg, err := loadAgentConfig(t, c)
	if err != nil {
		t.Fatalf("the agent refuses the rendered environment:\n%v", err)
	}
	if cfg.DrainAccept == native {
		t.Errorf("agent DrainAccept = %v with native = %v", cfg.DrainAccept, native)
	}

	// Listeners: ingest on loopback, admin port declared and probed.
	ingestHost, ingestPort := splitHostPort(t, "SLUICE_LISTEN", cfg.Listen)
	if ingestHost != "127.0.0.1" {
		t.Errorf("ingest listener %q: want loopback 127.0.0.1", cfg.Listen)
	}
	_, adminPort := splitHostPort(t, "SLUICE_ADMIN_LISTEN", cfg.AdminListen)
	if got, _ := envValue(app, "SLUICE_URL"); got != "http://127.0.0.1:"+strconv.Itoa(ingestPort) {
		t.Errorf("app SLUICE_URL = %q, want the ingest listener %s", got, cfg.Listen)
	}
	for _, other := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		if other.Name == c.Name {
			continue
		}
		for _, p := range other.Ports {
			if int(p.ContainerPort) == ingestPort || int(p.ContainerPort) == adminPort {
				t.Errorf("container %s declares port %d, used by sluice", other.Name, p.ContainerPort)
			}
		}
	}
	checkProbe(t, c, "startupProbe", c.StartupProbe, "/readyz", adminPort)
	checkProbe(t, c, "livenessProbe", c.LivenessProbe, "/livez", adminPort)
	checkProbe(t, c, "readinessProbe", c.ReadinessProbe, "/readyz", adminPort)

	// Spool: mounted where the agent looks, big enough for what it may write.
	mount := spoolMount(t, c, cfg.SpoolDir)
	need := int64(cfg.SpoolMaxBytes) + 2*int64(cfg.SpoolSegmentBytes) + int64(cfg.DeadletterMaxBytes)
	var size *resource.Quantity
	if vol := findVolume(spec.Volumes, mount.Name); vol != nil {
		switch {
		case vol.EmptyDir != nil:
			size = vol.EmptyDir.SizeLimit
			if size == nil {
				t.Fatal("emptyDir spool without sizeLimit")
			}
			if vol.EmptyDir.Medium != corev1.StorageMediumDefault {
				t.Errorf("emptyDir spool medium %q: fsync on memory proves nothing", vol.EmptyDir.Medium)
			}
		case vol.PersistentVolumeClaim != nil:
			checkFSGroup(t, pod)
		default:
			t.Fatalf("spool volume %s: unexpected source %+v", vol.Name, vol.VolumeSource)
		}
	} else {
		if r.statefulSet == nil {
			t.Fatalf("spool volume %q is neither a pod volume nor a claim template", mount.Name)
		}
		claim := claimTemplate(t, r, mount.Name)
		q := claim.Spec.Resources.Requests[corev1.ResourceStorage]
		size = &q
		checkFSGroup(t, pod)
	}
	if size != nil && size.Value() < need {
		t.Errorf("spool volume %s holds %s (%d bytes), below spool cap + 2 segments + dead-letter cap = %d bytes",
			mount.Name, size, size.Value(), need)
	}

	// Security context: Restricted profile, non-root, read-only root.
	sc := c.SecurityContext
	if sc == nil {
		t.Fatal("sluice container has no securityContext")
	}
	switch {
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
		t.Error("securityContext.runAsNonRoot must be true")
	case sc.RunAsUser == nil || *sc.RunAsUser != 65532:
		t.Errorf("securityContext.runAsUser = %v, want 65532", sc.RunAsUser)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("securityContext.readOnlyRootFilesystem must be true")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("securityContext.allowPrivilegeEscalation must be false")
	case sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0:
		t.Errorf("securityContext.capabilities = %+v, want drop [ALL]", sc.Capabilities)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("securityContext.seccompProfile = %+v, want RuntimeDefault", sc.SeccompProfile)
	case sc.Privileged != nil && *sc.Privileged:
		t.Error("securityContext.privileged must not be true")
	}

	// Grace period: the app stops, then the agent drains.
	appShutdown := time.Duration(intValue(t, v, "app.shutdownSeconds")) * time.Second
	if spec.TerminationGracePeriodSeconds == nil {
		t.Fatal("terminationGracePeriodSeconds not set")
	}
	grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	if grace < appShutdown+cfg.DrainTimeout+graceMargin {
		t.Errorf("terminationGracePeriodSeconds %v < app shutdown %v + drain timeout %v + margin %v",
			grace, appShutdown, cfg.DrainTimeout, graceMargin)
	}

	// Service links off: a Service named sluice... would inject SLUICE_* variables.
	if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
		t.Error("enableServiceLinks must be false")
	}

	// Image and resources.
	lib, err := loader.LoadDir(libraryDir)
	if err != nil {
		t.Fatal(err)
	}
	if want := "ghcr.io/sluiceio/sluice:" + lib.Metadata.AppVersion; c.Image != want {
		t.Errorf("image = %q, want %q (library appVersion)", c.Image, want)
	}
	wantRes := map[string]string{"requests.cpu": "50m", "requests.memory": "64Mi", "limits.memory": "128Mi"}
	gotRes := map[string]string{
		"requests.cpu":    c.Resources.Requests.Cpu().String(),
		"requests.memory": c.Resources.Requests.Memory().String(),
		"limits.memory":   c.Resources.Limits.Memory().String(),
	}
	for k, want := range wantRes {
		if gotRes[k] != want {
			t.Errorf("resources.%s = %s, want %s", k, gotRes[k], want)
		}
	}

	// Secrets arrive as secretKeyRef, never as plain values.
	for _, s := range listValue(t, v, "sluice.secretEnv") {
		m := s.(map[string]any)
		name := m["name"].(string)
		if !strings.HasPrefix(name, "SLUICE_") {
			name = "SLUICE_" + name
		}
		found := false
		for _, e := range c.Env {
			if e.Name == name {
				found = e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil &&
					e.ValueFrom.SecretKeyRef.Name == m["secretName"] && e.ValueFrom.SecretKeyRef.Key == m["key"]
			}
		}
		if !found {
			t.Errorf("secretEnv %s: no matching secretKeyRef in the container env", name)
		}
	}

	checkMonitoring(t, r, pod, c)
	if !strings.Contains(r.notes, "Grace period:") {
		t.Errorf("NOTES.txt did not render:\n%s", r.notes)
	}
}

// checkProbe asserts an HTTP GET probe on the admin port.
func checkProbe(t *testing.T, c *corev1.Container, what string, p *corev1.Probe, path string, adminPort int) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s: want an httpGet probe", what)
		return
	}
	if p.HTTPGet.Path != path {
		t.Errorf("%s path = %q, want %q", what, p.HTTPGet.Path, path)
	}
	if got := portNumber(t, c, p.HTTPGet.Port); got != adminPort {
		t.Errorf("%s port = %s (%d), want the admin port %d", what, p.HTTPGet.Port.String(), got, adminPort)
	}
	if p.HTTPGet.Scheme != "" && p.HTTPGet.Scheme != corev1.URISchemeHTTP {
		t.Errorf("%s scheme = %s, want HTTP", what, p.HTTPGet.Scheme)
	}
}

// portNumber resolves a probe port (number or container port name).
func portNumber(t *testing.T, c *corev1.Container, p intstr.IntOrString) int {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	t.Errorf("port name %q is not a port of container %s", p.StrVal, c.Name)
	return 0
}

func splitHostPort(t *testing.T, name, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s = %q: %v", name, addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("%s = %q: %v", name, addr, err)
	}
	return host, n
}

// spoolMount returns the container's mount of the spool directory.
func spoolMount(t *testing.T, c *corev1.Container, dir string) *corev1.VolumeMount {
	t.Helper()
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		if m.MountPath == dir || strings.HasPrefix(dir, strings.TrimSuffix(m.MountPath, "/")+"/") {
			if m.ReadOnly {
				t.Errorf("spool mount %s is read-only", m.Name)
			}
			return m
		}
	}
	t.Fatalf("no volume mounted at the spool directory %q (mounts %+v)", dir, c.VolumeMounts)
	return nil
}

func spoolVolume(t *testing.T, pod *corev1.PodTemplateSpec) *corev1.Volume {
	t.Helper()
	c := container(pod.Spec.InitContainers, "sluice")
	if c == nil {
		c = container(pod.Spec.Containers, "sluice")
	}
	if c == nil || len(c.VolumeMounts) == 0 {
		t.Fatal("no sluice container with a volume mount")
	}
	v := findVolume(pod.Spec.Volumes, c.VolumeMounts[0].Name)
	if v == nil {
		t.Fatalf("no pod volume %s", c.VolumeMounts[0].Name)
	}
	return v
}

func findVolume(vols []corev1.Volume, name string) *corev1.Volume {
	for i := range vols {
		if vols[i].Name == name {
			return &vols[i]
		}
	}
	return nil
}

func claimTemplate(t *testing.T, r *rendered, name string) *corev1.PersistentVolumeClaim {
	t.Helper()
	for i := range r.statefulSet.Spec.VolumeClaimTemplates {
		if c := &r.statefulSet.Spec.VolumeClaimTemplates[i]; c.Name == name {
			return c
		}
	}
	t.Fatalf("StatefulSet has no volumeClaimTemplate %q", name)
	return nil
}

// checkFSGroup: a claim keeps its owner, so the agent's group must own it.
func checkFSGroup(t *testing.T, pod *corev1.PodTemplateSpec) {
	t.Helper()
	psc := pod.Spec.SecurityContext
	if psc == nil || psc.FSGroup == nil || *psc.FSGroup != 65532 {
		t.Errorf("claim spool: pod securityContext.fsGroup must be 65532, got %+v", psc)
	}
}

// dashboardMetrics are the series the dashboard must chart.
var dashboardMetrics = []string{
	"sluice_ingest_messages_total",
	"sluice_ingest_rejected_total",
	"sluice_request_duration_seconds_bucket",
	"sluice_spool_fsync_duration_seconds_bucket",
	"sluice_spool_backlog_bytes",
	"sluice_sink_delivered_total",
	"sluice_sink_retries_total",
	"sluice_deadletters_total",
	"sluice_dropped_total",
}

// checkMonitoring checks the PodMonitor and the dashboard ConfigMap when on.
func checkMonitoring(t *testing.T, r *rendered, pod *corev1.PodTemplateSpec, c *corev1.Container) {
	t.Helper()
	if boolValue(t, r.values, "sluice.podMonitor.enabled") {
		if len(r.podMonitors) != 1 {
			t.Fatalf("want 1 PodMonitor, got %d", len(r.podMonitors))
		}
		pm := r.podMonitors[0]
		for k, want := range pm.Spec.Selector.MatchLabels {
			if pod.Labels[k] != want {
				t.Errorf("PodMonitor selects %s=%s, pod has %q", k, want, pod.Labels[k])
			}
		}
		if len(pm.Spec.Selector.MatchLabels) == 0 {
			t.Error("PodMonitor selects every pod")
		}
		if len(pm.Spec.PodMetricsEndpoints) != 1 {
			t.Fatalf("want 1 endpoint, got %d", len(pm.Spec.PodMetricsEndpoints))
		}
		ep := pm.Spec.PodMetricsEndpoints[0]
		if ep.Path != "/metrics" || ep.Port == nil || portNumber(t, c, intstr.FromString(*ep.Port)) == 0 {
			t.Errorf("PodMonitor endpoint = port %v path %q, want the admin port and /metrics", ep.Port, ep.Path)
		}
	} else if len(r.podMonitors) != 0 {
		t.Error("PodMonitor rendered while disabled")
	}
	if boolValue(t, r.values, "sluice.dashboard.enabled") {
		if len(r.configMaps) != 1 {
			t.Fatalf("want 1 dashboard ConfigMap, got %d", len(r.configMaps))
		}
		cm := r.configMaps[0]
		if cm.Labels["grafana_dashboard"] != "1" {
			t.Errorf("dashboard ConfigMap labels = %v, want grafana_dashboard: \"1\"", cm.Labels)
		}
		checkDashboard(t, cm.Data["sluice.json"])
	} else if len(r.configMaps) != 0 {
		t.Error("dashboard rendered while disabled")
	}
}

// checkDashboard: valid JSON whose queries use every metric of the agent.
func checkDashboard(t *testing.T, text string) {
	t.Helper()
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(text), &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Error("dashboard needs a title and a uid")
	}
	var exprs strings.Builder
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs.WriteString(tg.Expr + "\n")
		}
	}
	for _, m := range dashboardMetrics {
		if !strings.Contains(exprs.String(), m) {
			t.Errorf("dashboard does not chart %s", m)
		}
	}
}

// TestUnknownVariableRefusedByAgent is a guard on the test itself: an
// unknown variable passed through sluice.env renders, and the agent's config
// refuses it, naming it.
func TestUnknownVariableRefusedByAgent(t *testing.T) {
	r := mustRender(t, readValues(t, "sluice:\n  env:\n    SINKS: kafka\n    KAFKA_BROKERS: k:9092\n    KAFKA_BROKER: k:9092\n"))
	c := container(r.podSpec(t).Spec.InitContainers, "sluice")
	if c == nil {
		t.Fatal("no sluice init container")
	}
	_, err := loadAgentConfig(t, c)
	if err == nil || !strings.Contains(err.Error(), "SLUICE_KAFKA_BROKER") {
		t.Fatalf("config.Load error = %v, want one naming SLUICE_KAFKA_BROKER", err)
	}
}

// TestChartVariablesKnown: every variable the chart derives from values is
// one the agent lists.
func TestChartVariablesKnown(t *testing.T) {
	known := map[string]bool{}
	for _, v := range config.Variables() {
		known[v.Name] = true
	}
	c := container(mustRender(t, readValues(t, "sluice:\n  native: false\n")).podSpec(t).Spec.Containers, "sluice")
	for _, e := range c.Env {
		if !known[e.Name] && e.Name != "GOMEMLIMIT" { // the Go runtime's, not the agent's
			t.Errorf("the chart sets %s, which config.Variables does not list", e.Name)
		}
	}
}

func lookup(t *testing.T, v map[string]any, path string) any {
	t.Helper()
	var cur any = v
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("values: %s: %s is not a map", path, k)
		}
		cur = m[k]
	}
	return cur
}

func boolValue(t *testing.T, v map[string]any, path string) bool {
	t.Helper()
	b, ok := lookup(t, v, path).(bool)
	if !ok {
		t.Fatalf("values: %s is not a bool", path)
	}
	return b
}

func intValue(t *testing.T, v map[string]any, path string) int64 {
	t.Helper()
	switch n := lookup(t, v, path).(type) {
	case float64:
		return int64(n)
	case int64:
		return n
	case int:
		return int64(n)
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	t.Fatalf("values: %s is not a number", path)
	return 0
}

func listValue(t *testing.T, v map[string]any, path string) []any {
	t.Helper()
	switch l := lookup(t, v, path).(type) {
	case nil:
		return nil
	case []any:
		return l
	}
	t.Fatalf("values: %s is not a list", path)
	return nil
}
