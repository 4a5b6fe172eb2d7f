// Command barehttp is the ceiling that scripts/bench-matrix measures
// sluice's ingest against: a bare fasthttp server whose handler reads the
// request body and answers 202 {"ids":[...]}, one id per message (per
// non-empty line with Content-Type application/x-ndjson, one per message of
// a POST /v1/messages batch, else one), like a sluice push reply. With
// -write FILE it also appends every body to FILE (one write(2) per request,
// never fsynced): the ceiling of any handler that touches the disk per
// request. With -durable FILE it answers a request only once its body is
// on disk: one committer goroutine appends all waiting bodies with one
// write(2) and one fdatasync(2) (durable.go), the ceiling of any server
// whose acknowledgement waits for an fsync.
//
//	barehttp [-addr 127.0.0.1:0] [-write FILE | -durable FILE] [-lifetime 1h]
//
// It prints the address it listens on as the first line of stdout and
// exits on SIGTERM or SIGINT, or after -lifetime in any case; with
// -durable it prints {"commits":N,"records":M} as its last line.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "barehttp:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (port 0 = any free port)")
	write := flag.String("write", "", "append every request body to this file (created or truncated; no fsync)")
	durable := flag.String("durable", "", "append every request body to this file and answer after its fdatasync (group commit)")
	lifetime := flag.Duration("lifetime", time.Hour, "exit after this long even without a signal")
	flag.Parse()
	if *write != "" && *durable != "" {
		return errors.New("-write and -durable exclude each other")
	}

	h := &handler{}
	for _, name := range []string{*write, *durable} {
		if name == "" {
			continue
		}
		f, err := os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		if name == *write {
			h.out = f
		} else {
			h.sync = newCommitter(f, 4096)
			defer func() {
				h.sync.close()
				fmt.Printf("{\"commits\":%d,\"records\":%d}\n", h.sync.commits.Load(), h.sync.records.Load())
			}()
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	// The same limits as sluice's ingest listener at its defaults.
	srv := &fasthttp.Server{
		Handler:                       h.serve,
		Name:                          "barehttp",
		MaxRequestBodySize:            16 << 20,
		ReadBufferSize:                16 << 10,
		ReadTimeout:                   10 * time.Second,
		WriteTimeout:                  10 * time.Second,
		IdleTimeout:                   60 * time.Second,
		Concurrency:                   4096,
		DisableHeaderNamesNormalizing: true,
		NoDefaultServerHeader:         true,
		CloseOnShutdown:               true,
	}
	fmt.Println(ln.Addr().String())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *lifetime)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	if err := srv.ShutdownWithContext(context.Background()); err != nil {
		return err
	}
	if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return h.writeErr()
}

// handler answers every request like a successful push.
type handler struct {
	out  *os.File   // nil without -write
	sync *committer // nil without -durable
	seq  atomic.Uint64
	werr atomic.Pointer[error]
}

var (
	ndjson   = []byte("application/x-ndjson")
	batch    = []byte("/v1/messages")
	topicKey = []byte(`"topic"`) // opens each message of a batch; escaped in values
)

func (h *handler) serve(ctx *fasthttp.RequestCtx) {
	body := ctx.PostBody()
	var err error
	switch {
	case h.out != nil:
		_, err = h.out.Write(body)
	case h.sync != nil:
		err = h.sync.commit(body)
	}
	if err != nil {
		h.werr.CompareAndSwap(nil, &err)
		ctx.Error(`{"error":"write failed","code":"io_error"}`, fasthttp.StatusInternalServerError)
		return
	}
	n := 1
	switch {
	case bytes.HasPrefix(ctx.Request.Header.ContentType(), ndjson):
		n = lines(body)
	case bytes.Equal(ctx.Path(), batch):
		n = max(bytes.Count(body, topicKey), 1)
	}
	last := h.seq.Add(uint64(n))
	buf := make([]byte, 0, 16+n*24)
	buf = append(buf, `{"ids":[`...)
	for i := range n {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `"00000000bare0000-1-`...)
		buf = strconv.AppendUint(buf, last-uint64(n-1-i), 10)
		buf = append(buf, '"')
	}
	buf = append(buf, "]}"...)
	ctx.Response.SetBodyRaw(buf)
	ctx.SetContentType("application/json")
	ctx.SetStatusCode(fasthttp.StatusAccepted)
}

// writeErr returns the first failed write, if any.
func (h *handler) writeErr() error {
	if p := h.werr.Load(); p != nil {
		return fmt.Errorf("write: %w", *p)
	}
	return nil
}

// lines counts the non-empty lines of an NDJSON body ("\r\n" accepted), as
// sluice does.
func lines(body []byte) int {
	n := 0
	for len(body) > 0 {
		line, rest, _ := bytes.Cut(body, []byte{'\n'})
		if len(bytes.TrimSuffix(line, []byte{'\r'})) > 0 {
			n++
		}
		body = rest
	}
	return n
}
