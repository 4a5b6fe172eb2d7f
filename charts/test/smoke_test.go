package test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/syncbuf"
	corev1 "k8s.io/api/core/v1"
)

// TestRenderedContainerRuns starts the agent binary with the container spec
// the chart renders (its args and environment; the spool directory moved to a
// temporary one, the ports to free ones) and checks that the probes the chart
// declares answer 200 on the admin port, that the app's SLUICE_URL reaches the
// ingest listener, that /metrics has the series the dashboard charts, and that
// SIGTERM ends the agent within the grace period.
func TestRenderedContainerRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent; skipped with -short")
	}
	if m, _ := filepath.Glob(filepath.Join(repoRoot, "cmd", "sluice", "*.go")); len(m) == 0 {
		t.Skip("cmd/sluice does not exist yet")
	}
	ingest, admin := freePort(t), freePort(t)
	r := mustRender(t, readValues(t, fmt.Sprintf("sluice:\n  ports:\n    ingest: %d\n    admin: %d\n", ingest, admin)))
	spec := &r.podSpec(t).Spec
	c := container(spec.InitContainers, "sluice")
	app := container(spec.Containers, "app")
	if c == nil || app == nil {
		t.Fatal("want the sluice init container and the app container")
	}

	bin := filepath.Join(t.TempDir(), "sluice")
	build := exec.Command("sh", filepath.Join(repoRoot, "scripts", "build-static"), bin)
	build.Env = append(os.Environ(), "VERSION=v0.0.0-smoke")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build-static: %v\n%s", err, out)
	}

	spoolDir := filepath.Join(t.TempDir(), "spool")
	if err := os.Mkdir(spoolDir, 0o700); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, e := range c.Env {
		v := e.Value
		switch {
		case e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil:
			v = memLimitPlaceholder
		case e.ValueFrom != nil:
			v = secretPlaceholder
		case e.Name == "SLUICE_SPOOL_DIR":
			v = spoolDir
		}
		env = append(env, e.Name+"="+v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, c.Args...)
	cmd.Env = env
	var logs syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	done := false // set once the value on exited was received
	defer func() {
		if !done {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("agent output:\n%s", logs.String())
		}
	}()

	probeURL := func(p *corev1.Probe) string {
		return fmt.Sprintf("http://127.0.0.1:%d%s", portNumber(t, c, p.HTTPGet.Port), p.HTTPGet.Path)
	}
	// The startup probe, as the kubelet runs it: until it succeeds.
	startup := c.StartupProbe
	deadline := time.Now().Add(time.Duration(startup.PeriodSeconds*startup.FailureThreshold) * time.Second)
	for {
		if code, _, _ := get(probeURL(startup)); code == http.StatusOK {
			break
		}
		select {
		case err := <-exited:
			done = true
			t.Fatalf("agent exited before its startup probe succeeded: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("startup probe %s did not succeed within %d x %d s", probeURL(startup), startup.FailureThreshold, startup.PeriodSeconds)
		}
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if code, _, err := get(probeURL(p)); code != http.StatusOK {
			t.Errorf("%s probe %s: status %d, %v", name, probeURL(p), code, err)
		}
	}

	// The app pushes to SLUICE_URL.
	base, _ := envValue(app, "SLUICE_URL")
	resp, err := http.Post(base+"/v1/topics/smoke", "application/octet-stream", strings.NewReader("hello from the chart test"))
	if err != nil {
		t.Fatalf("push to %s: %v", base, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("push to %s: status %d %s", base, resp.StatusCode, body)
	}

	// The dashboard's series, as far as one push creates them.
	code, metrics, err := get(fmt.Sprintf("http://127.0.0.1:%d/metrics", admin))
	if code != http.StatusOK {
		t.Fatalf("/metrics: status %d, %v", code, err)
	}
	for _, m := range []string{
		"sluice_ingest_messages_total",
		"sluice_request_duration_seconds_bucket",
		"sluice_spool_fsync_duration_seconds_bucket",
		"sluice_spool_backlog_bytes",
	} {
		if !strings.Contains("\n"+metrics, "\n"+m) {
			t.Errorf("/metrics has no %s, which the dashboard charts", m)
		}
	}

	// SIGTERM: the agent drains and exits within the pod's grace period.
	grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		done = true
		if err != nil {
			t.Errorf("agent exited after SIGTERM with %v, want status 0", err)
		}
	case <-time.After(grace):
		t.Fatalf("agent still running %v after SIGTERM (the grace period)", grace)
	}
}

// get fetches a URL and returns the status code and the body.
func get(url string) (int, string, error) {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
