//go:build pprof

package main

// Built with -tags pprof (for profiling only: `go build -tags pprof
// ./cmd/sluice`), the binary serves net/http/pprof on the loopback address
// in PPROF_LISTEN (for example 127.0.0.1:6060). Release builds do
// not contain it.

import (
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	addr := os.Getenv("PPROF_LISTEN")
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		slog.Error("PPROF_LISTEN: want a loopback host:port", "value", addr)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		slog.Error("PPROF_LISTEN", "err", err)
		os.Exit(2)
	}
	go func() { _ = http.Serve(ln, nil) }()
}
