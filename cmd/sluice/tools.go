package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluiceio/sluice/agent"
	"github.com/sluiceio/sluice/config"
	"github.com/sluiceio/sluice/spool"
)

func printConfig(args []string) error {
	if len(args) > 0 && args[0] == "reference" {
		fmt.Print(config.Reference())
		return nil
	}
	c, err := config.Load()
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	fmt.Print(c.Redacted())
	return nil
}

// localClient talks to the local agent: admin for reads, ingest (TCP or
// unix socket) for control calls.
type localClient struct {
	admin, ingest string
	token         string // SLUICE_AUTH_TOKEN
	controlToken  string // the running agent's, from its spool directory
	controlErr    error  // why there is none
	hc            *http.Client
}

func newLocalClient() (*localClient, error) {
	c, err := config.Load()
	if err != nil {
		return nil, fmt.Errorf("configuration:\n%w", err)
	}
	lc := &localClient{admin: "http://" + loopback(c.AdminListen), token: c.AuthToken}
	lc.controlToken, lc.controlErr = agent.ReadControlToken(c.SpoolDir)
	tr := &http.Transport{}
	if p, ok := strings.CutPrefix(c.Listen, "unix:"); ok {
		lc.ingest = "http://unix"
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", p)
		}
	} else {
		lc.ingest = "http://" + loopback(c.Listen)
	}
	adminTr := &http.Transport{}
	lc.hc = &http.Client{Timeout: 5 * time.Second, Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		if r.URL.Host == "unix" {
			return tr.RoundTrip(r)
		}
		return adminTr.RoundTrip(r)
	})}
	return lc, nil
}

// control makes a control call: with the bearer token when one is
// configured, and the agent's control token read from the spool directory
// (control calls need more than a loopback peer).
func (lc *localClient) control(method, path string) (*http.Response, error) {
	req, err := http.NewRequest(method, lc.ingest+path, nil)
	if err != nil {
		return nil, err
	}
	if lc.token != "" {
		req.Header.Set("Authorization", "Bearer "+lc.token)
	} else if lc.controlErr != nil {
		return nil, fmt.Errorf("control token: %w (run this as the agent's user, with its SLUICE_SPOOL_DIR)", lc.controlErr)
	}
	if lc.controlToken != "" {
		req.Header.Set(agent.ControlTokenHeader, lc.controlToken)
	}
	resp, err := lc.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("no agent answering on %s: %w", lc.ingest, err)
	}
	return resp, nil
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// loopback turns ":7103" or "0.0.0.0:7103" into "127.0.0.1:7103".
func loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func (lc *localClient) stats() (agent.Stats, error) {
	var st agent.Stats
	resp, err := lc.hc.Get(lc.admin + "/v1/stats")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /v1/stats: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func status() error {
	lc, err := newLocalClient()
	if err != nil {
		return err
	}
	st, err := lc.stats()
	if err != nil {
		return fmt.Errorf("no agent answering on %s: %w", lc.admin, err)
	}
	printStats(os.Stdout, st)
	return nil
}

func printStats(w io.Writer, st agent.Stats) {
	fmt.Fprintf(w, "sluice %s  spool %s epoch %d  ready=%v draining=%v\n", st.Version, st.SpoolID, st.Epoch, st.Ready, st.Draining)
	fmt.Fprintf(w, "spool: %d segments, %s on disk, backlog %s of %s, %.1f records/commit\n",
		st.Spool.Segments, human(st.Spool.DiskBytes), human(st.Spool.BacklogBytes), human(st.Spool.MaxBytes), st.Spool.MeanCommitSize)
	if st.Spool.DiskError != "" {
		fmt.Fprintf(w, "DISK ERROR: %s\n", st.Spool.DiskError)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SINK\tTYPE\tTOPICS\tBACKLOG\tBYTES\tOLDEST\tSTATE\tDROPPED")
	for _, s := range st.Sinks {
		age := "-"
		if !s.Oldest.IsZero() {
			age = time.Since(s.Oldest).Round(time.Second).String()
		}
		state := "ok"
		if s.Failing {
			state = "RETRYING"
		}
		if s.DeadLetterStuck > 0 {
			state = "STUCK(dead letter not writable)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%d\n", s.Name, s.Type, strings.Join(s.Topics, ","),
			s.BacklogMessages, human(s.BacklogBytes), age, state, s.Dropped)
	}
	tw.Flush()
	if len(st.Queues) > 0 {
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "QUEUE	TOPICS	BACKLOG	BYTES	READY	IN_FLIGHT	OLDEST	REDELIVERED	EXPIRED	DROPPED")
		for _, q := range st.Queues {
			age := "-"
			if !q.Oldest.IsZero() {
				age = time.Since(q.Oldest).Round(time.Second).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%s\t%d\t%d\t%d\n", q.Name, strings.Join(q.Topics, ","),
				q.BacklogMessages, human(q.BacklogBytes), q.Ready, q.InFlight, age, q.Redeliveries, q.ExpiredLeases, q.Dropped)
		}
		tw.Flush()
	}
	for _, o := range st.Orphans {
		fmt.Fprintf(w, "orphan cursor %q holds its backlog: remove with 'sluice spool cursor rm %s'\n", o, o)
	}
}

func human(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%dB", b)
}

func drain() error {
	lc, err := newLocalClient()
	if err != nil {
		return err
	}
	resp, err := lc.control(http.MethodPost, "/v1/control/drain")
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("drain refused: %s %s", resp.Status, bytes.TrimSpace(body))
	}
	fmt.Println("draining…")
	for {
		st, err := lc.stats()
		if err != nil {
			fmt.Println("agent stopped")
			return nil
		}
		var left int64
		for _, s := range st.Sinks {
			left += s.BacklogBytes
		}
		fmt.Printf("backlog %s\n", human(left))
		time.Sleep(500 * time.Millisecond)
	}
}

func spoolCmd(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: sluice spool verify|inspect DIR, or sluice spool cursor rm NAME")
	}
	switch args[0] {
	case "verify":
		r, err := spool.Verify(args[1])
		if err != nil {
			return err
		}
		printReport(os.Stdout, r)
		if !r.Recovery.Clean() {
			os.Exit(3) // recovery would change something
		}
		return nil
	case "inspect":
		n := 5
		if len(args) > 2 {
			if v, err := strconv.Atoi(args[2]); err == nil {
				n = v
			}
		}
		r, err := spool.Inspect(args[1], 0, n)
		if err != nil {
			return err
		}
		printReport(os.Stdout, r)
		for _, rec := range r.Records {
			fmt.Println(agent.DescribeRecord(rec))
		}
		return nil
	case "cursor":
		if len(args) != 3 || args[1] != "rm" {
			return fmt.Errorf("usage: sluice spool cursor rm NAME")
		}
		c, err := config.Load()
		if err != nil {
			return fmt.Errorf("configuration:\n%w", err)
		}
		sp, err := spool.Open(c.SpoolDir, spool.Options{})
		if err != nil {
			return err
		}
		defer sp.Close()
		if err := sp.RemoveCursor(args[2]); err != nil {
			return err
		}
		fmt.Printf("cursor %s removed\n", args[2])
		return nil
	}
	return fmt.Errorf("unknown spool command %q", args[0])
}

func printReport(w io.Writer, r spool.Report) {
	fmt.Fprintf(w, "spool %s  id %s  epoch %d  live=%v\n", r.Dir, r.ID, r.Epoch, r.Live)
	rec := r.Recovery
	fmt.Fprintf(w, "records %d..%d in %d segments\n", rec.FirstSeq, rec.LastSeq, rec.Segments)
	if rec.Clean() {
		fmt.Fprintln(w, "recovery: nothing to repair")
	} else {
		fmt.Fprintf(w, "recovery would: cut %d tail bytes, quarantine %d segment tails, report %d corrupt records, remove %d temp files, finish truncation %q\n",
			rec.TailCutBytes, len(rec.Quarantined), len(rec.CorruptRecords), rec.RemovedTemp, rec.FinishedTruncat)
		for _, q := range rec.Quarantined {
			fmt.Fprintf(w, "  quarantine %s from offset %d: %d bytes, %d records lost\n", q.Segment, q.Offset, q.Bytes, q.LostRecords)
		}
	}
	if rec.ZeroFillBytes > 0 {
		fmt.Fprintf(w, "zero-filled room past the records: %d bytes (SPOOL_SYNC=always writes it ahead; cut at open, not damage)\n", rec.ZeroFillBytes)
	}
	for _, s := range r.Segments {
		fmt.Fprintf(w, "segment %s  seq %d..%d  %s\n", s.Name, s.First, s.Last, human(s.Bytes))
	}
	for _, c := range r.Cursors {
		state := ""
		if c.Error != "" {
			state = " (" + c.Error + ": would restart at the oldest record)"
		}
		fmt.Fprintf(w, "cursor %s  acked %d%s\n", c.Name, c.Acked, state)
	}
}

// deadletterCmd: sluice deadletter list|show|replay|purge, through the
// local agent's control API (loopback or unix socket, with the bearer token
// when set, else the control token from the spool directory).
func deadletterCmd(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: sluice deadletter list|show ID|replay|purge [-topic GLOB] [-sink NAME] [-reason R] [-since T] [-until T] [-limit N] [-id ID,...]")
	}
	op, args := args[0], args[1:]
	fs := flag.NewFlagSet("deadletter "+op, flag.ContinueOnError)
	topic := fs.String("topic", "", "topic glob")
	sinkName := fs.String("sink", "", "sink name")
	reason := fs.String("reason", "", "reason (too_large, expired, corrupt, ...)")
	since := fs.String("since", "", "RFC 3339 time: dead-lettered at or after")
	until := fs.String("until", "", "RFC 3339 time: dead-lettered before")
	limit := fs.Int("limit", 100, "most entries listed")
	ids := fs.String("id", "", "comma list of dead-letter ids (dl_id)")
	var show string
	if op == "show" && len(args) > 0 {
		show, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"topic": *topic, "sink": *sinkName, "reason": *reason, "since": *since, "until": *until, "dl_id": *ids} {
		if v != "" {
			q.Set(k, v)
		}
	}
	q.Set("limit", strconv.Itoa(*limit))
	lc, err := newLocalClient()
	if err != nil {
		return err
	}
	method, path := http.MethodGet, "/v1/control/deadletters"
	switch op {
	case "list":
	case "show":
		if show == "" {
			return fmt.Errorf("usage: sluice deadletter show ID")
		}
		path += "/" + show
	case "replay", "purge":
		if *topic == "" && *sinkName == "" && *reason == "" && *since == "" && *until == "" && *ids == "" {
			fmt.Fprintf(os.Stderr, "%s: no filter given: this takes every dead letter\n", op)
		}
		method, path = http.MethodPost, path+"/"+op
	default:
		return fmt.Errorf("unknown deadletter command %q", op)
	}
	resp, err := lc.control(method, path+"?"+q.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var pretty bytes.Buffer
	if json.Indent(&pretty, body, "", "  ") == nil {
		body = pretty.Bytes()
	}
	fmt.Println(strings.TrimSpace(string(body)))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}
