package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluiceio/sluice/agent"
	"github.com/sluiceio/sluice/internal/freeport"
	"github.com/sluiceio/sluice/internal/syncbuf"
	"github.com/sluiceio/sluice/sink/file"
)

// These tests build the real sluice binary and drive it as a user would:
// environment variables, HTTP on free ports, signals, kill -9, and the file
// sink's output on disk.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "sluice")
	out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	closeRealKafka()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", freeport.Port(t))
}

type proc struct {
	cmd    *exec.Cmd
	url    string
	admin  string
	stderr *syncbuf.Buffer
	exited chan error
}

// logs is what the agent wrote to stderr so far.
func (p *proc) logs() string { return p.stderr.String() }

// control makes a control call with the agent's control token, read from
// its spool directory as the CLI does.
func (p *proc) control(method, path string) (*http.Response, error) {
	req, err := p.controlRequest(method, path)
	if err != nil {
		return nil, err
	}
	return http.DefaultClient.Do(req)
}

// controlRequest is a control call (path from /v1/control/ on) carrying
// the control token the running agent wrote to its spool directory.
func (p *proc) controlRequest(method, path string) (*http.Request, error) {
	dir := ""
	for _, e := range p.cmd.Env {
		if v, ok := strings.CutPrefix(e, "SLUICE_SPOOL_DIR="); ok {
			dir = v
		}
	}
	tok, err := agent.ReadControlToken(dir)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(method, p.url+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(agent.ControlTokenHeader, tok)
	return req, nil
}

// start runs the agent with env (SLUICE_LISTEN and SLUICE_ADMIN_LISTEN are
// chosen here) and waits for /readyz.
func start(t *testing.T, env ...string) *proc {
	t.Helper()
	// A freeport port is free when it is picked, not when the agent binds
	// it: another test's outgoing connection may take it meanwhile. The
	// agent then exits at once; it is started again on other ports.
	for try := 1; ; try++ {
		if p, inUse := startOn(t, freePort(t), freePort(t), env, try < 3); !inUse {
			return p
		}
	}
}

// startOn starts the agent on listen and admin and waits until it is
// ready; with retry set, an agent that exits because an address is in use
// is reported (inUse) instead of failing the test.
func startOn(t *testing.T, listen, admin string, env []string, retry bool) (p *proc, inUse bool) {
	t.Helper()
	cmd := exec.Command(binary, "run")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "SLUICE_LISTEN=" + listen, "SLUICE_ADMIN_LISTEN=" + admin, "SLUICE_LOG_FORMAT=text"}, env...)
	p = &proc{cmd: cmd, url: "http://" + listen, admin: "http://" + admin, stderr: &syncbuf.Buffer{}, exited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("agent log:\n%s", p.logs())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p, false
			}
		}
		select {
		case err := <-p.exited:
			if retry && strings.Contains(p.logs(), "address already in use") {
				p.exited <- err
				return nil, true
			}
			t.Fatalf("agent exited: %v\n%s", err, p.logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not ready\n%s", p.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *proc) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("agent did not exit")
		return nil
	}
}

func push(url, topic string, body []byte, ctype string) (int, []string, error) {
	req, _ := http.NewRequest("POST", url+"/v1/topics/"+topic, bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var v struct{ IDs []string }
	json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, v.IDs, nil
}

func readSink(t *testing.T, dir string) []file.Record {
	t.Helper()
	recs, err := file.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return recs
}

func waitRecords(t *testing.T, dir string, n int) []file.Record {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		recs := readSink(t, dir)
		if len(recs) >= n {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink has %d records, want %d", len(recs), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fileSinkEnv(spool, out string) []string {
	return []string{"SLUICE_SPOOL_DIR=" + spool, "SLUICE_SINKS=out", "SLUICE_OUT_TYPE=file", "SLUICE_OUT_PATH=" + out}
}

func TestE2EValuesArriveByteForByte(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	p := start(t, fileSinkEnv(filepath.Join(dir, "spool"), out)...)
	values := []string{`{"b":1,"a":[1.50,"\u00e9"]}`, `[1, 2 ,3]`, `12.50e3`, `true`}
	var body bytes.Buffer
	body.WriteString(`{"messages":[`)
	for i, v := range values {
		if i > 0 {
			body.WriteString(",")
		}
		fmt.Fprintf(&body, `{"topic":"json","key":"k%d","value":%s}`, i, v)
	}
	body.WriteString(`]}`)
	resp, err := http.Post(p.url+"/v1/messages", "application/json", &body)
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("push: %v %v", resp, err)
	}
	recs := waitRecords(t, out, len(values))
	for i, r := range recs {
		m := r.Message()
		if string(m.Value) != values[i] || string(m.Key) != fmt.Sprintf("k%d", i) {
			t.Fatalf("record %d: value %q key %q", i, m.Value, m.Key)
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

// TestE2EKill9 kills the agent with SIGKILL under load, several times, and
// checks that every acknowledged message reaches the file sink.
func TestE2EKill9(t *testing.T) {
	dir := t.TempDir()
	out, sp := filepath.Join(dir, "out"), filepath.Join(dir, "spool")
	acked := map[string]string{}
	var mu sync.Mutex
	for cycle := 0; cycle < 3; cycle++ {
		p := start(t, fileSinkEnv(sp, out)...)
		var n atomic.Int64
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					v := fmt.Sprintf("c%d-w%d-%d", cycle, w, i)
					code, ids, err := push(p.url, "load", []byte(v), "")
					if err != nil {
						return // killed mid-request: outcome unknown
					}
					if code == 202 {
						mu.Lock()
						acked[ids[0]] = v
						mu.Unlock()
						n.Add(1)
					}
				}
			}()
		}
		for n.Load() < 300 {
			time.Sleep(5 * time.Millisecond)
		}
		p.cmd.Process.Kill()
		p.wait(t)
		cancel()
		wg.Wait()
	}
	p := start(t, fileSinkEnv(sp, out)...)
	recs := waitRecords(t, out, len(acked))
	deadline := time.Now().Add(30 * time.Second)
	for {
		seen := map[string]int{}
		for _, r := range recs {
			seen[r.ID]++
		}
		missing := 0
		for id := range acked {
			if seen[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			dups := 0
			for _, c := range seen {
				dups += c - 1
			}
			byID := map[string]string{}
			for _, r := range recs {
				byID[r.ID] = string(r.Message().Value)
			}
			for id, v := range acked {
				if byID[id] != v {
					t.Fatalf("message %s arrived as %q, want %q", id, byID[id], v)
				}
			}
			t.Logf("kill -9 ×3: %d acknowledged, 0 lost, %d duplicates", len(acked), dups)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged messages lost", missing, len(acked))
		}
		time.Sleep(50 * time.Millisecond)
		recs = readSink(t, out)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t)
}

// TestE2ESigtermDrains: SIGTERM stops accepting, forwards the backlog and
// exits 0; a sink that cannot deliver leaves its backlog for the next start.
func TestE2ESigtermDrains(t *testing.T) {
	dir := t.TempDir()
	out, sp := filepath.Join(dir, "out"), filepath.Join(dir, "spool")
	broken := filepath.Join(dir, "broken")
	os.WriteFile(broken, []byte("a regular file, not a directory"), 0o644)
	env := append(fileSinkEnv(sp, out), "SLUICE_SINKS=out,dead", "SLUICE_DEAD_TYPE=file", "SLUICE_DEAD_PATH="+broken,
		"SLUICE_DRAIN_TIMEOUT=2s")
	p := start(t, env...)
	var body bytes.Buffer
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&body, "m%d\n", i)
	}
	code, ids, err := push(p.url, "t", body.Bytes(), "application/x-ndjson")
	if err != nil || code != 202 || len(ids) != 500 {
		t.Fatalf("push: %d %v", code, err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.logs())
	}
	if n := len(readSink(t, out)); n != 500 {
		t.Fatalf("drained %d of 500 to the working sink", n)
	}
	if !strings.Contains(p.logs(), "drain timeout") {
		t.Fatalf("no drain-timeout line for the broken sink:\n%s", p.logs())
	}
	// The broken sink's backlog is still there: fix it, restart, it arrives.
	os.Remove(broken)
	p = start(t, env...)
	if n := len(waitRecords(t, broken, 500)); n != 500 {
		t.Fatalf("broken sink got %d after the fix", n)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t)
}

func TestE2EStatusAcrossRestartAndConfigErrors(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken")
	os.WriteFile(broken, nil, 0o644)
	env := append(fileSinkEnv(filepath.Join(dir, "spool"), broken), "SLUICE_DRAIN_TIMEOUT=500ms")
	p := start(t, env...)
	_, ids, _ := push(p.url, "t", []byte("x"), "")
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t)

	os.Remove(broken)
	p = start(t, env...)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(p.url + "/v1/messages/" + ids[0])
		if err != nil {
			t.Fatal(err)
		}
		var st struct{ Status string }
		json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if st.Status == "delivered" {
			break
		}
		if st.Status != "pending" || time.Now().After(deadline) {
			t.Fatalf("status %q", st.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t)

	// A typo stops start-up with one line naming the variable.
	cmd := exec.Command(binary, "run")
	cmd.Env = append(env, "SLUICE_SPOL_DIR=/tmp/x")
	outp, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(outp), "SLUICE_SPOL_DIR") {
		t.Fatalf("typo accepted: %v\n%s", err, outp)
	}
	// A second agent on the same spool is refused.
	p = start(t, env...)
	cmd = exec.Command(binary, "run")
	cmd.Env = append(env, "SLUICE_LISTEN="+freePort(t), "SLUICE_ADMIN_LISTEN="+freePort(t))
	outp, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(outp), "locked") {
		t.Fatalf("second agent on one spool: %v\n%s", err, outp)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t)
}

func TestE2EStatusDrainAndSpoolTools(t *testing.T) {
	dir := t.TempDir()
	out, sp := filepath.Join(dir, "out"), filepath.Join(dir, "spool")
	env := fileSinkEnv(sp, out)
	p := start(t, env...)
	if code, _, _ := push(p.url, "t", []byte("a\nb\n"), "application/x-ndjson"); code != 202 {
		t.Fatalf("push %d", code)
	}
	waitRecords(t, out, 2)
	listen := strings.TrimPrefix(p.url, "http://")
	admin := strings.TrimPrefix(p.admin, "http://")
	cliEnv := append(env, "SLUICE_LISTEN="+listen, "SLUICE_ADMIN_LISTEN="+admin)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(binary, args...)
		cmd.Env = cliEnv
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	outp, err := run("status")
	if err != nil || !strings.Contains(outp, "out") || !strings.Contains(outp, "file") {
		t.Fatalf("status: %v\n%s", err, outp)
	}
	outp, err = run("spool", "verify", sp)
	if err != nil || !strings.Contains(outp, "live=true") || !strings.Contains(outp, "nothing to repair") {
		t.Fatalf("verify: %v\n%s", err, outp)
	}
	// The live tail is zero-filled ahead of its records (SPOOL_SYNC=always):
	// room, not damage.
	if !strings.Contains(outp, "zero-filled room past the records") {
		t.Fatalf("verify of a live SYNC=always spool shows no zero-filled room:\n%s", outp)
	}
	outp, err = run("spool", "inspect", sp, "2")
	if err != nil || !strings.Contains(outp, "topic=t") || !strings.Contains(outp, `value="b"`) {
		t.Fatalf("inspect: %v\n%s", err, outp)
	}
	outp, err = run("drain")
	if err != nil || !strings.Contains(outp, "agent stopped") {
		t.Fatalf("drain: %v\n%s", err, outp)
	}
	if err := p.wait(t); err != nil {
		t.Fatalf("exit after drain: %v", err)
	}
	outp, err = run("config")
	if err != nil || !strings.Contains(outp, "SLUICE_OUT_PATH="+out) {
		t.Fatalf("config: %v\n%s", err, outp)
	}
}

// TestE2EChainedAgents: sidecar → aggregator over the HTTP sink (gzip,
// bearer token) → file sink. Everything pushed to the sidecar arrives
// through an aggregator outage, with the sidecar's sluice-id kept.
func TestE2EChainedAgents(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	aggListen, aggAdmin := freePort(t), freePort(t)
	aggEnv := append(fileSinkEnv(filepath.Join(dir, "agg"), out), "SLUICE_AUTH_TOKEN=chain-secret")
	startAgg := func() *proc {
		cmd := exec.Command(binary, "run")
		cmd.Env = append([]string{"SLUICE_LISTEN=" + aggListen, "SLUICE_ADMIN_LISTEN=" + aggAdmin, "SLUICE_LOG_FORMAT=text"}, aggEnv...)
		p := &proc{cmd: cmd, url: "http://" + aggListen, admin: "http://" + aggAdmin, stderr: &syncbuf.Buffer{}, exited: make(chan error, 1)}
		cmd.Stderr = p.stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.exited <- cmd.Wait() }()
		t.Cleanup(func() { cmd.Process.Kill() })
		return p
	}
	agg := startAgg()
	side := start(t, "SLUICE_SPOOL_DIR="+filepath.Join(dir, "side"), "SLUICE_SINKS=up", "SLUICE_UP_TYPE=http",
		"SLUICE_UP_URL=http://"+aggListen+"/v1/messages", "SLUICE_UP_TOKEN=chain-secret", "SLUICE_UP_GZIP=true",
		"SLUICE_UP_RETRY_MAX=200ms")
	want := map[string]string{}
	pushN := func(from, n int) {
		for i := from; i < from+n; i++ {
			v := fmt.Sprintf(`{"n":%d}`, i)
			code, ids, err := push(side.url, "chain", []byte(v), "")
			if err != nil || code != 202 {
				t.Fatalf("push %d: %d %v", i, code, err)
			}
			want[ids[0]] = v
		}
	}
	pushN(0, 50)
	waitRecords(t, out, 50)
	agg.cmd.Process.Signal(syscall.SIGTERM)
	agg.wait(t)
	pushN(50, 50) // the aggregator is down: the sidecar keeps accepting
	agg = startAgg()
	recs := waitRecords(t, out, 100)
	got := map[string]string{}
	for _, r := range recs {
		got[r.ID] = string(r.Message().Value)
	}
	for id, v := range want {
		if got[id] != v {
			t.Fatalf("message %s: got %q, want %q (ids are kept end to end)", id, got[id], v)
		}
	}
	agg.cmd.Process.Signal(syscall.SIGTERM)
	agg.wait(t)
}

func TestE2EDeadletterCLI(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	os.WriteFile(out, nil, 0o644) // the sink cannot write: messages wait, then expire
	env := append(fileSinkEnv(filepath.Join(dir, "spool"), out), "SLUICE_OUT_MAX_AGE=200ms", "SLUICE_OUT_RETRY_MIN=10ms", "SLUICE_OUT_RETRY_MAX=50ms")
	p := start(t, env...)
	push(p.url, "t", []byte("x\ny\n"), "application/x-ndjson")
	cliEnv := append(env, "SLUICE_LISTEN="+strings.TrimPrefix(p.url, "http://"), "SLUICE_ADMIN_LISTEN="+strings.TrimPrefix(p.admin, "http://"))
	run := func(args ...string) string {
		cmd := exec.Command(binary, args...)
		cmd.Env = cliEnv
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, b)
		}
		return string(b)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(run("deadletter", "list"), `"total": 2`) {
		if time.Now().After(deadline) {
			t.Fatalf("no dead letters:\n%s", run("deadletter", "list"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if o := run("deadletter", "list", "-reason", "expired"); !strings.Contains(o, `"reason": "expired"`) {
		t.Fatalf("list: %s", o)
	}
	if o := run("deadletter", "purge", "-reason", "expired"); !strings.Contains(o, `"purged": 2`) {
		t.Fatalf("purge: %s", o)
	}
	if o := run("deadletter", "list"); !strings.Contains(o, `"total": 0`) {
		t.Fatalf("after purge: %s", o)
	}
}

// start's retry: an agent whose address is taken exits at once, and
// startOn reports that instead of failing the test.
func TestStartReportsAnAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if p, inUse := startOn(t, ln.Addr().String(), freePort(t), []string{"SLUICE_SPOOL_DIR=" + t.TempDir()}, true); !inUse || p != nil {
		t.Fatalf("an agent on a taken address: inUse=%v", inUse)
	}
}
