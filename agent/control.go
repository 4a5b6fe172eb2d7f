package agent

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// Control calls (/v1/control/...: drain, dead-letter list/show/replay/purge)
// change the agent's state, so a loopback peer is not enough to make them:
// every local process, and sluice itself when a message's callback points
// at its own listener, is a loopback peer. Without SLUICE_AUTH_TOKEN a
// control call must also present the agent's control token in the
// Sluice-Control-Token header. The token is random, new at every start, and
// written to ControlTokenPath(spool dir) with mode 0600 for the time the
// agent runs: only a process of the agent's user (the sluice CLI run
// beside it, `kubectl exec` into its container) can read it. A payload,
// header or callback never carries it: the agent sends it nowhere.
//
// With SLUICE_AUTH_TOKEN set, the bearer token authorizes control calls
// as every other call.

// ControlTokenHeader carries the control token on a control call.
const ControlTokenHeader = "Sluice-Control-Token"

// ControlTokenFile is the name of the control token's file in the spool
// directory.
const ControlTokenFile = "control.token"

// ErrNoControlToken: no agent runs on that spool directory (or it is of a
// version without control tokens).
var ErrNoControlToken = errors.New("agent: no control token (is the agent running on this spool directory?)")

// ControlTokenPath is where an agent on spoolDir writes its control token.
func ControlTokenPath(spoolDir string) string { return filepath.Join(spoolDir, ControlTokenFile) }

// ReadControlToken reads the control token of the agent running on
// spoolDir.
func ReadControlToken(spoolDir string) (string, error) {
	b, err := os.ReadFile(ControlTokenPath(spoolDir))
	if errors.Is(err, os.ErrNotExist) {
		return "", ErrNoControlToken
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// ControlToken is this agent's control token (for tests and embedders).
func (a *Agent) ControlToken() string { return a.controlToken }

func newControlToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("agent: control token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// writeControlToken writes the token file (0600, atomically: a reader sees
// the old file or the whole new one). On a full disk it overwrites the
// previous run's file in place (same size: no new block needed).
func (a *Agent) writeControlToken() error {
	err := a.writeControlTokenFile()
	if err == nil {
		return nil
	}
	p := ControlTokenPath(a.sp.Dir())
	if fi, serr := os.Stat(p); serr == nil && fi.Size() == int64(len(a.controlToken)+1) {
		if f, oerr := os.OpenFile(p, os.O_WRONLY, 0); oerr == nil {
			_, werr := f.WriteAt([]byte(a.controlToken+"\n"), 0)
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr == nil && os.Chmod(p, 0o600) == nil {
				return nil
			}
		}
	}
	return err
}

// keepWritingControlToken retries writing the token file until it is
// written or ctx ends: the agent runs on a full disk (pushes answer 507),
// and control calls work again once there is room.
func (a *Agent) keepWritingControlToken(ctx context.Context, first error) {
	a.log.Error("cannot write the control token file; control calls need SLUICE_AUTH_TOKEN until it is written (retrying)",
		"path", ControlTokenPath(a.sp.Dir()), "err", first)
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if a.writeControlToken() == nil {
			a.log.Info("control token file written", "path", ControlTokenPath(a.sp.Dir()))
			return
		}
	}
}

func (a *Agent) writeControlTokenFile() error {
	p := ControlTokenPath(a.sp.Dir())
	tmp := p + ".tmp"
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("control token: %w", err)
	}
	_, err = f.WriteString(a.controlToken + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("control token: %w", err)
	}
	return nil
}

// removeControlToken removes the token file if it is still this agent's.
func (a *Agent) removeControlToken() {
	if t, err := ReadControlToken(a.sp.Dir()); err == nil && t == a.controlToken {
		os.Remove(ControlTokenPath(a.sp.Dir()))
	}
}

// authorizeControl admits a control call: a loopback or unix-socket peer,
// and the bearer token when one is configured (checked by authorize before
// this) or else the control token.
func (a *Agent) authorizeControl(ctx *fasthttp.RequestCtx) *apiError {
	if !isLocalPeer(ctx) {
		return errorf(http.StatusForbidden, "forbidden", "control endpoints answer loopback and unix-socket clients only")
	}
	if a.opts.AuthToken != "" {
		return nil // authorize checked the bearer token
	}
	got := peekHeader(ctx, ControlTokenHeader)
	if len(got) == 0 || subtle.ConstantTimeCompare(got, []byte(a.controlToken)) != 1 {
		return errorf(http.StatusUnauthorized, "unauthorized",
			"control calls need the %s header with the token in %s (the sluice CLI sends it), or SLUICE_AUTH_TOKEN",
			ControlTokenHeader, ControlTokenPath(a.sp.Dir()))
	}
	return nil
}

func isLocalPeer(ctx *fasthttp.RequestCtx) bool {
	if ra := ctx.RemoteAddr(); ra != nil && ra.Network() == "unix" {
		return true
	}
	if c := ctx.Conn(); c != nil {
		if _, ok := c.LocalAddr().(*net.UnixAddr); ok {
			return true
		}
	}
	return ctx.RemoteIP().IsLoopback()
}
