package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sluiceio/sluice/internal/syncbuf"
)

// The model test's world: the HTTP receivers the agent's http sinks and
// callbacks talk to, whose behaviour the model switches, and the agent
// process itself (started, killed, terminated on the same spool).

// Receiver modes. A receiver in modeHung holds every request until its mode
// changes (or the sender gives up); modeSlow answers after a short sleep.
const (
	modeUp   = "up"
	modeFail = "fail503" // transient: 503, retried forever
	modeHung = "hung"
	modeSlow = "slow"
)

// healthy reports whether a sink receiver in mode m delivers.
func modeHealthy(m string) bool { return m == modeUp || m == modeSlow }

// delivery is one message a sink receiver accepted.
type delivery struct {
	id, token string
}

// receiver is an HTTP endpoint on loopback. As a sink receiver it decodes
// sluice's /v1/messages batches and records what it accepted; with
// refusePoison it answers 400 to a batch holding a message whose value has
// "poison":true, which the http sink classifies as a per-message permanent
// error (the forwarder splits the batch and dead-letters that message). As
// a callback receiver it records the reports.
type receiver struct {
	name string
	srv  *http.Server
	url  string

	mu           sync.Mutex
	mode         string
	refusePoison bool
	changed      chan struct{} // closed when mode changes: releases hung requests
	got          []delivery
	reports      []cbReport
	requests     int
}

// cbReport is the part of a callback report the model checks.
type cbReport struct {
	DeliveryID string `json:"delivery_id"`
	ID         string `json:"id"`
	Status     string `json:"status"`
	Sinks      map[string]struct {
		Status string `json:"status"`
	} `json:"sinks"`
}

func newReceiver(name string, callbacks bool) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{name: name, mode: modeUp, refusePoison: true, changed: make(chan struct{}), url: "http://" + ln.Addr().String()}
	h := r.serveSink
	if callbacks {
		h = r.serveCallback
	}
	r.srv = &http.Server{Handler: http.HandlerFunc(h), ReadHeaderTimeout: 10 * time.Second}
	go r.srv.Serve(ln)
	return r, nil
}

func (r *receiver) close() {
	r.setMode(modeUp) // release hung handlers
	r.srv.Close()
}

func (r *receiver) setMode(m string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mode != m {
		r.mode = m
		close(r.changed)
		r.changed = make(chan struct{})
	}
}

func (r *receiver) getMode() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mode
}

func (r *receiver) setRefusePoison(v bool) {
	r.mu.Lock()
	r.refusePoison = v
	r.mu.Unlock()
}

// gate applies the receiver's mode to one request; false = already answered.
func (r *receiver) gate(w http.ResponseWriter, req *http.Request) bool {
	for {
		r.mu.Lock()
		r.requests++
		mode, changed := r.mode, r.changed
		r.mu.Unlock()
		switch mode {
		case modeFail:
			w.Header().Set("Retry-After", "0")
			http.Error(w, "receiver down", http.StatusServiceUnavailable)
			return false
		case modeHung:
			select {
			case <-changed:
				continue // re-evaluate under the new mode
			case <-req.Context().Done():
				return false // the sender gave up: nothing was accepted
			}
		case modeSlow:
			time.Sleep(100 * time.Millisecond)
		}
		return true
	}
}

// modelValue is the part of a message value the model writes: its token
// and whether the receivers may refuse it.
type modelValue struct {
	T      string `json:"t"`
	Poison bool   `json:"poison"`
}

func (r *receiver) serveSink(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	if !r.gate(w, req) {
		return
	}
	var batch struct {
		Messages []struct {
			Value    json.RawMessage `json:"value"`
			ValueB64 *string         `json:"value_b64"`
			ID       string          `json:"id"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(body, &batch); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ds := make([]delivery, 0, len(batch.Messages))
	poison := false
	for _, m := range batch.Messages {
		v := []byte(m.Value)
		if m.ValueB64 != nil {
			v, _ = base64.StdEncoding.DecodeString(*m.ValueB64)
		}
		var mv modelValue
		if len(v) > 0 && v[0] == '{' {
			json.Unmarshal(v, &mv)
		}
		poison = poison || mv.Poison
		ds = append(ds, delivery{id: m.ID, token: mv.T})
	}
	r.mu.Lock()
	if poison && r.refusePoison {
		r.mu.Unlock()
		http.Error(w, "poison message refused", http.StatusBadRequest)
		return
	}
	r.got = append(r.got, ds...)
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (r *receiver) serveCallback(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil || !r.gate(w, req) {
		return
	}
	var rep cbReport
	if json.Unmarshal(body, &rep) != nil {
		http.Error(w, "bad report", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.reports = append(r.reports, rep)
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

func (r *receiver) callbackReports() []cbReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]cbReport(nil), r.reports...)
}

// startAgent runs the binary with env and waits for /readyz. Unlike start it
// does not fail the test: a refused configuration is something the model
// reacts to.
func startAgent(env []string) (*proc, error) {
	listen, admin, err := twoPorts()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary, "run")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "SLUICE_LISTEN=" + listen, "SLUICE_ADMIN_LISTEN=" + admin, "SLUICE_LOG_FORMAT=text"}, env...)
	p := &proc{cmd: cmd, url: "http://" + listen, admin: "http://" + admin, stderr: &syncbuf.Buffer{}, exited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(p.admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p, nil
			}
		}
		select {
		case err := <-p.exited:
			p.exited <- err
			return p, fmt.Errorf("agent exited at start-up: %v: %s", err, lastLines(p.logs(), 5))
		default:
		}
		if time.Now().After(deadline) {
			p.cmd.Process.Kill()
			return p, fmt.Errorf("agent not ready within 30s: %s", lastLines(p.logs(), 5))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func twoPorts() (string, string, error) {
	var addrs []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", "", err
		}
		addrs = append(addrs, ln.Addr().String())
		ln.Close()
	}
	return addrs[0], addrs[1], nil
}

// exitedWithin waits up to d for p to exit; it reports the exit error and
// whether it exited.
func exitedWithin(p *proc, d time.Duration) (error, bool) {
	select {
	case err := <-p.exited:
		p.exited <- err
		return err, true
	case <-time.After(d):
		return nil, false
	}
}

// alive reports whether p still runs.
func alive(p *proc) bool {
	if p == nil {
		return false
	}
	_, done := exitedWithin(p, 0)
	return !done
}

func kill9Proc(p *proc) {
	p.cmd.Process.Signal(syscall.SIGKILL)
	exitedWithin(p, 30*time.Second)
}

// control calls a state-changing endpoint of the agent with its control
// token (proc.controlRequest). Every control call of the model goes through
// here: when control authorization changes, only this function changes.
func control(p *proc, method, path string) (int, []byte, error) {
	req, err := p.controlRequest(method, "/v1/control/"+path)
	if err != nil {
		return 0, nil, err
	}
	resp, err := modelClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// modelClient bounds every call the model makes: a hung agent is a finding,
// not a hung test.
var modelClient = &http.Client{Timeout: 15 * time.Second}

// scrape reads /metrics into name{labels} → value.
func scrape(p *proc) (map[string]float64, error) {
	resp, err := modelClient.Get(p.admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for line := range bytes.Lines(b) {
		s := strings.TrimSpace(string(line))
		if s == "" || s[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(s, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(s[i+1:], 64); err == nil {
			out[s[:i]] = v
		}
	}
	return out, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
