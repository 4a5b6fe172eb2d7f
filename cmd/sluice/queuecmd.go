package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

const queueUsage = `usage: sluice queue pull NAME [-max N] [-wait D] [-visibility D]
       sluice queue ack|nack|extend NAME [-delay D] [-visibility D] RECEIPT... (or - : one per line on stdin)`

// queueCmd pulls from and acknowledges to a local queue of the local agent.
// pull prints one JSON message per line (receipt included); ack, nack and
// extend print the agent's reply.
func queueCmd(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("%s", queueUsage)
	}
	op, name, args := args[0], args[1], args[2:]
	fs := flag.NewFlagSet("queue "+op, flag.ContinueOnError)
	max := fs.Int("max", 1, "pull: most messages")
	wait := fs.Duration("wait", 0, "pull: how long to wait for a first message (up to 20s)")
	vis := fs.Duration("visibility", 0, "pull, extend: lease length (0 = the queue's default)")
	delay := fs.Duration("delay", 0, "nack: when the message is available again")
	if err := fs.Parse(args); err != nil {
		return err
	}
	body := map[string]any{}
	switch op {
	case "pull":
		body["max"] = *max
		if *wait > 0 {
			body["wait"] = wait.String()
		}
		if *vis > 0 {
			body["visibility"] = vis.String()
		}
	case "ack", "nack", "extend":
		rs := fs.Args()
		if len(rs) == 1 && rs[0] == "-" {
			rs = nil
			sc := bufio.NewScanner(os.Stdin)
			for sc.Scan() {
				if l := strings.TrimSpace(sc.Text()); l != "" {
					rs = append(rs, l)
				}
			}
		}
		if len(rs) == 0 {
			return fmt.Errorf("%s: no receipts given\n%s", op, queueUsage)
		}
		body["receipts"] = rs
		if op == "nack" && *delay > 0 {
			body["delay"] = delay.String()
		}
		if op == "extend" {
			body["visibility"] = vis.String()
		}
	default:
		return fmt.Errorf("unknown queue command %q\n%s", op, queueUsage)
	}
	lc, err := newLocalClient()
	if err != nil {
		return err
	}
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, lc.ingest+"/v1/queues/"+name+"/"+op, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if lc.token != "" {
		req.Header.Set("Authorization", "Bearer "+lc.token)
	}
	hc := *lc.hc
	hc.Timeout = *wait + 10*time.Second
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("no agent answering on %s: %w", lc.ingest, err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(reply)))
	}
	if op == "pull" {
		var v struct{ Messages []json.RawMessage }
		if err := json.Unmarshal(reply, &v); err != nil {
			return err
		}
		for _, m := range v.Messages {
			fmt.Println(string(m))
		}
		return nil
	}
	fmt.Println(strings.TrimSpace(string(reply)))
	return nil
}
