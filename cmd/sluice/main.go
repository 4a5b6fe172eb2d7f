// Command sluice is the sidecar queue agent and its tools.
//
//	sluice [run]                 run the agent (configured by SLUICE_* variables)
//	sluice config                print the effective configuration, secrets redacted
//	sluice config reference      print the configuration reference (Markdown)
//	sluice status                show the local agent's sinks and backlog
//	sluice drain                 ask the local agent to drain and exit; show progress
//	sluice spool verify DIR      what recovery would do (read-only, safe on a live spool)
//	sluice spool inspect DIR [N] segments, cursors and N decoded records (read-only)
//	sluice spool cursor rm NAME  remove an orphan cursor (agent stopped; SLUICE_SPOOL_DIR)
//	sluice deadletter list|show|replay|purge  dead-letter operations on the local agent
//	sluice queue pull|ack|nack|extend NAME   pull from and acknowledge to a local queue
//	sluice bench [flags]         load generator (and delivery verifier) against a running agent
//	sluice version               print the version
package main

import (
	"fmt"
	"os"
)

// version is stamped at build time: -ldflags "-X main.version=...".
var version = "dev"

func main() {
	args := os.Args[1:]
	cmd := "run"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "run":
		err = runAgent()
	case "version", "--version", "-v":
		fmt.Println("sluice", version)
	case "config":
		err = printConfig(args)
	case "status":
		err = status()
	case "drain":
		err = drain()
	case "spool":
		err = spoolCmd(args)
	case "bench":
		err = benchCmd(args)
	case "deadletter":
		err = deadletterCmd(args)
	case "queue":
		err = queueCmd(args)
	case "help", "-h", "--help":
		usage(os.Stdout)
	default:
		usage(os.Stderr)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice:", err)
		os.Exit(1)
	}
}

func usage(w *os.File) {
	fmt.Fprint(w, `usage: sluice [command]

  run                   run the agent (default); configured by SLUICE_* variables
  config                print the effective configuration, secrets redacted
  config reference      print every variable with its default (Markdown)
  status                show the local agent's sinks and backlog
  drain                 ask the local agent to drain and exit; show progress
  spool verify DIR      report what recovery would do (read-only)
  spool inspect DIR [N] segments, cursors and N decoded records (read-only)
  spool cursor rm NAME  remove an orphan cursor from SLUICE_SPOOL_DIR (agent stopped)
  deadletter list|show ID|replay|purge [-topic G -sink S -reason R -since T -until T -id IDS]
                        dead letters of the local agent
  queue pull NAME [-max N -wait D -visibility D]
                        lease messages of a local queue (one JSON object per line)
  queue ack|nack|extend NAME [-delay D -visibility D] RECEIPT...|-
                        finish, give back or lengthen leases (- reads receipts from stdin)
  bench [flags]         load generator against a running agent; -h for flags
  version               print the version
`)
}
