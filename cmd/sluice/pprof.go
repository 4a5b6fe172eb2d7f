//go:build pprof

package main

import (
	"net/http"
	_ "net/http/pprof" // profiling endpoints, only in binaries built with -tags pprof
	"os"
)

// A binary built with -tags pprof serves net/http/pprof on
// PPROF_LISTEN (a loopback address) for benchmarks' profiles.
// Release builds do not contain it.
func init() {
	if addr := os.Getenv("PPROF_LISTEN"); addr != "" {
		go http.ListenAndServe(addr, nil) //nolint:errcheck // best effort, profiling only
	}
}
