package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluiceio/sluice/agent"
	"github.com/sluiceio/sluice/internal/loadgen"
)

// A real full disk: the spool, the dead-letter log or the file sink's
// directory on a small tmpfs (root only; skipped otherwise), filled up with
// a filler file that is removed to give the space back.

// diskFullMount mounts a tmpfs of size at dir (created when missing).
func diskFullMount(t *testing.T, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: a real full disk needs root to mount a small tmpfs")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("skipping: cannot mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

// fillDisk appends to path until the file system is full and returns the
// file's size.
func fillDisk(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{64 << 10, 4 << 10, 512} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	st, _ := f.Stat()
	return st.Size()
}

// leaveFree fills the file system of path, then gives back free bytes.
func leaveFree(t *testing.T, path string, free int64) {
	t.Helper()
	n := fillDisk(t, path)
	if err := os.Truncate(path, max(n-free, 0)); err != nil {
		t.Fatal(err)
	}
}

// seqPusher pushes NDJSON requests one after the other, with values in
// the load generator's format (so loadgen.Verify can check them), and
// records what was acknowledged.
type seqPusher struct {
	url, topic, run, key string
	size                 int
	n                    int64
	acked                []loadgen.Acked
	codes                map[string]int
}

func newSeqPusher(url, topic, run string, size int) *seqPusher {
	return &seqPusher{url: url, topic: topic, run: run, key: "k0", size: size, codes: map[string]int{}}
}

// push sends one request of msgs messages; it returns the status and
// error code ("" for 202).
func (s *seqPusher) push(t *testing.T, msgs int) (int, string) {
	t.Helper()
	var body bytes.Buffer
	first := s.n + 1
	for i := 0; i < msgs; i++ {
		s.n++
		v := fmt.Sprintf(`{"run":%q,"key":%q,"n":%d,"pad":"`, s.run, s.key, s.n)
		body.WriteString(v + strings.Repeat("x", max(s.size-len(v)-2, 0)) + "\"}\n")
	}
	req, _ := http.NewRequest("POST", s.url+"/v1/topics/"+s.topic, &body)
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Sluice-Key", s.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	defer resp.Body.Close()
	var r struct {
		IDs  []string `json:"ids"`
		Code string   `json:"code"`
	}
	json.NewDecoder(resp.Body).Decode(&r)
	s.codes[fmt.Sprintf("%d %s", resp.StatusCode, r.Code)]++
	if resp.StatusCode == http.StatusAccepted {
		if len(r.IDs) != msgs {
			t.Fatalf("202 with %d ids for %d messages", len(r.IDs), msgs)
		}
		for i, id := range r.IDs {
			s.acked = append(s.acked, loadgen.Acked{ID: id, Topic: s.topic, Key: s.key, N: first + int64(i)})
		}
	}
	return resp.StatusCode, r.Code
}

// pushUntil pushes until a request is answered with status, at most
// limit requests; it returns the number of requests sent.
func (s *seqPusher) pushUntil(t *testing.T, msgs, status, limit int) int {
	t.Helper()
	for i := 1; i <= limit; i++ {
		if st, _ := s.push(t, msgs); st == status {
			return i
		}
	}
	t.Fatalf("no %d after %d requests: %v", status, limit, s.codes)
	return 0
}

// waitAccepted pushes until a request is accepted again (space returned),
// for up to 20 s.
func (s *seqPusher) waitAccepted(t *testing.T, msgs int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, _ := s.push(t, msgs); st == http.StatusAccepted {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pushes did not resume after space returned: %v", s.codes)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// spoolVerifyCLI runs "sluice spool verify DIR" and fails the test when
// recovery would do more than cut a torn tail (quarantine, corrupt
// records). It returns the output.
func spoolVerifyCLI(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command(binary, "spool", "verify", dir).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) {
		t.Fatalf("spool verify: %v\n%s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "nothing to repair") {
		m := regexp.MustCompile(`quarantine (\d+) segment tails, report (\d+) corrupt records`).FindStringSubmatch(s)
		if m == nil || m[1] != "0" || m[2] != "0" {
			t.Errorf("spool verify %s would repair more than a torn tail:\n%s", dir, s)
		}
	}
	return s
}

// recoveryLine is the recovery line of a spool verify output.
func recoveryLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "recovery") {
			return l
		}
	}
	return out
}

func agentStats(t *testing.T, p *proc) agent.Stats {
	t.Helper()
	var st agent.Stats
	getJSON(t, p.admin+"/v1/stats", &st)
	return st
}

// verifyAll checks deliveries against a sequential pusher: nothing lost,
// nothing out of order, nothing delivered that was refused.
// With replayed dead letters, order is not checked (replay comes later by
// design); maxDups < 0 allows any number of duplicates.
func verifyAll(t *testing.T, s *seqPusher, got []loadgen.Delivered, checkOrder bool, maxDups int) loadgen.VerifyReport {
	t.Helper()
	v := loadgen.Verify(s.acked, loadgen.FilterRun(got, s.run))
	if v.Lost != 0 || (checkOrder && v.OutOfOrder != 0) || v.Unexpected != 0 || (maxDups >= 0 && v.Duplicates > maxDups) {
		t.Errorf("verify: %d acked, %d lost %v, %d out of order, %d unexpected (refused pushes delivered) %v, %d duplicates",
			v.Acked, v.Lost, v.LostIDs, v.OutOfOrder, v.Unexpected, v.UnexpectedIDs, v.Duplicates)
	}
	for _, d := range got {
		if d.Run != s.run {
			t.Errorf("delivered a record that is not one of the pushed values: %+v", d)
			break
		}
	}
	return v
}

// TestDiskFullSpool: the spool on a 4 MiB tmpfs. Pushes get 507
// disk_full, reads and health go on; space returns and pushes resume
// without a restart; the disk fills again, the agent is killed with
// kill -9, the spool needs at most a tail cut, the agent restarts on the
// full disk, and once space returns everything acknowledged is delivered
// and nothing refused is.
func TestDiskFullSpool(t *testing.T) {
	t.Parallel()
	mnt := filepath.Join(t.TempDir(), "mnt")
	diskFullMount(t, mnt, "4m")
	sp, filler := filepath.Join(mnt, "spool"), filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	rcv := newUpstream(t)
	rcv.status.Store(http.StatusServiceUnavailable) // upstream down: the backlog stays in the spool
	env := append(httpSinkEnv(sp, rcv.url()), "SLUICE_SPOOL_SEGMENT_BYTES=64KiB", "SLUICE_SPOOL_MAX_BYTES=64MiB")
	p := start(t, env...)
	s := newSeqPusher(p.url, "full", "diskfull", 1000)

	n := s.pushUntil(t, 10, http.StatusInsufficientStorage, 1000)
	if s.codes["507 disk_full"] != 1 {
		t.Fatalf("answers %v, want 507 disk_full", s.codes)
	}
	full := len(s.acked)
	for i := 0; i < 5; i++ {
		s.push(t, 10)
	}
	t.Logf("  disk full after %d requests: %d messages acknowledged; then %v", n, full, s.codes)
	st := agentStats(t, p)
	if st.Spool.DiskError == "" {
		t.Errorf("stats show no disk error: %+v", st.Spool)
	}
	for _, u := range []string{p.admin + "/readyz", p.admin + "/livez", p.url + "/v1/messages/" + s.acked[0].ID, p.admin + "/metrics"} {
		resp, err := http.Get(u)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s on a full disk: %v %v", u, resp, err)
		}
		resp.Body.Close()
	}
	if m := scrapeMetric(t, p, "sluice_spool_disk_error"); m != 1 {
		t.Errorf("sluice_spool_disk_error = %v, want 1", m)
	}

	// Space returns: pushes resume in the same process.
	os.Remove(filler)
	freed := time.Now()
	s.waitAccepted(t, 10)
	t.Logf("  space returned: pushes accepted again after %v, no restart", time.Since(freed).Round(time.Millisecond))

	// Full again, then kill -9 on the full disk.
	fillDisk(t, filler)
	s.pushUntil(t, 10, http.StatusInsufficientStorage, 1000)
	kill9(t, p)
	out := spoolVerifyCLI(t, sp)
	t.Logf("  kill -9 on the full disk; sluice spool verify: %s", recoveryLine(out))

	// Restart on the still-full disk (the reserve file lets it open).
	p = start(t, env...)
	s.url = p.url
	before := len(s.acked)
	s.pushUntil(t, 10, http.StatusInsufficientStorage, 1000)
	t.Logf("  restarted on the full disk: %d more messages accepted before 507 again", len(s.acked)-before)

	os.Remove(filler)
	s.waitAccepted(t, 10)
	rcv.status.Store(0) // upstream back
	waitBacklogEmpty(t, p)
	v := verifyAll(t, s, rcv.delivered(), true, 0)
	stopAgent(t, p)
	out = spoolVerifyCLI(t, sp)
	if !strings.Contains(out, "nothing to repair") {
		t.Errorf("spool after a clean stop:\n%s", out)
	}
	t.Logf("disk full spool: answers %v; %d acked, %d lost, %d duplicates, %d refused-but-delivered", s.codes, v.Acked, v.Lost, v.Duplicates, v.Unexpected)
}

// TestDiskFullDeadLetter: the dead-letter log (SPOOL_DIR/deadletter) on a
// full tmpfs. Messages the upstream refuses cannot be dead-lettered: the
// forwarder holds them (never acknowledged, never dropped) while pushes go
// on; kill -9 in that state leaves at most a torn tail; once space returns
// every refused message is in the dead-letter log, and a replay delivers
// them all.
func TestDiskFullDeadLetter(t *testing.T) {
	t.Parallel()
	sp := filepath.Join(t.TempDir(), "spool")
	dl := filepath.Join(sp, "deadletter")
	diskFullMount(t, dl, "1m")
	filler := filepath.Join(dl, "filler")
	rcv := newUpstream(t)
	isPoison := func(d loadgen.Delivered) bool { return d.N%2 == 0 }
	rcv.setPoison(isPoison)
	env := append(httpSinkEnv(sp, rcv.url()), "SLUICE_UP_BATCH_MESSAGES=10")
	p := start(t, env...)
	leaveFree(t, filler, 100<<10)
	s := newSeqPusher(p.url, "dlfull", "dlfull", 1000)
	for i := 0; i < 30; i++ {
		if st, code := s.push(t, 10); st != http.StatusAccepted {
			t.Fatalf("push %d: %d %s", i, st, code)
		}
	}
	poison := map[string]bool{}
	for _, a := range s.acked {
		if isPoison(loadgen.Delivered{N: a.N}) {
			poison[a.ID] = true
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.logs(), "cannot write dead letter") {
		if time.Now().After(deadline) {
			t.Fatalf("the dead-letter log never filled up:\n%s", p.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	held := dlTotal(t, p)
	if held >= len(poison) {
		t.Fatalf("%d dead letters written on a full disk, want fewer than %d", held, len(poison))
	}
	// Pushes are still accepted: only the dead-letter log is full.
	if st, code := s.push(t, 10); st != http.StatusAccepted {
		t.Errorf("push while the dead-letter log is full: %d %s", st, code)
	}
	for _, a := range s.acked[len(s.acked)-10:] {
		if isPoison(loadgen.Delivered{N: a.N}) {
			poison[a.ID] = true
		}
	}
	bl := agentStats(t, p).Sinks[0].BacklogMessages
	t.Logf("  dead-letter log full: %d of %d refused messages dead-lettered, %d messages held in the backlog", held, len(poison), bl)

	kill9(t, p)
	out := spoolVerifyCLI(t, dl)
	t.Logf("  kill -9 with the dead-letter disk full; sluice spool verify %s: %s", filepath.Base(dl), recoveryLine(out))
	p = start(t, env...)
	s.url = p.url

	os.Remove(filler)
	freed := time.Now()
	waitBacklogEmpty(t, p)
	t.Logf("  space returned: backlog resolved in %v", time.Since(freed).Round(time.Millisecond))
	var list struct {
		Deadletters []agent.DeadLetter
		Total       int
	}
	resp, err := p.control("GET", "/v1/control/deadletters?limit=100000")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	inDL := map[string]bool{}
	for _, d := range list.Deadletters {
		inDL[d.ID] = true
	}
	for id := range poison {
		if !inDL[id] {
			t.Errorf("refused message %s is neither delivered nor dead-lettered", id)
		}
	}

	rcv.setPoison(nil)
	if n := replayDeadLetters(p); n != list.Total {
		t.Errorf("replayed %d of %d", n, list.Total)
	}
	waitBacklogEmpty(t, p)
	v := verifyAll(t, s, rcv.delivered(), false, -1)
	stopAgent(t, p)
	t.Logf("disk full dead-letter log: %d refused messages, %d dead letters after space returned (%d written twice across the kill), all replayed; %d acked, %d lost, %d duplicates (redelivery after the kill and replay)",
		len(poison), list.Total, list.Total-len(poison), v.Acked, v.Lost, v.Duplicates)
}

// TestDiskFullFileSink: the file sink's directory on a full tmpfs. The sink
// retries (transient), delivers everything once space returns, and no
// message appears twice or half in the files.
func TestDiskFullFileSink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	diskFullMount(t, out, "1m")
	filler := filepath.Join(out, "filler.bin")
	leaveFree(t, filler, 128<<10)
	env := append(fileSinkEnv(filepath.Join(dir, "spool"), out), "SLUICE_SPOOL_SYNC=always", "SLUICE_OUT_BATCH_MESSAGES=50",
		"SLUICE_OUT_RETRY_MIN=20ms", "SLUICE_OUT_RETRY_MAX=200ms")
	p := start(t, env...)
	s := newSeqPusher(p.url, "fsfull", "fsfull", 500)
	for i := 0; i < 100; i++ {
		if st, code := s.push(t, 10); st != http.StatusAccepted {
			t.Fatalf("push %d: %d %s", i, st, code)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for !agentStats(t, p).Sinks[0].Failing {
		if time.Now().After(deadline) {
			t.Fatal("the file sink never reported failing on a full disk")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a few retries on the full disk
	part := readFileSinkAll(t, out)
	retries := scrapeMetric(t, p, `sluice_sink_retries_total{sink="out",reason="io"}`)
	t.Logf("  file sink on a full disk: %d of %d messages written, failing, %v retries so far", len(part), len(s.acked), retries)
	if len(part) >= len(s.acked) {
		t.Fatalf("everything fit: the disk was not full")
	}

	os.Remove(filler)
	waitBacklogEmpty(t, p)
	got := readFileSinkAll(t, out)
	v := verifyAll(t, s, got, true, 0)
	files, _ := filepath.Glob(filepath.Join(out, "*.ndjson"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Errorf("%s ends with a partial line", f)
		}
	}
	stopAgent(t, p)
	t.Logf("disk full file sink: %d acked, %d delivered in %d files, %d lost, %d duplicates, %s io retries",
		v.Acked, v.Delivered, len(files), v.Lost, v.Duplicates, strconv.FormatFloat(retries, 'f', 0, 64))
}
