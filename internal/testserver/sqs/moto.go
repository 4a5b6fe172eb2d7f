package sqsserver

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/internal/syncbuf"
	"github.com/sluiceio/sluice/internal/testenv"
)

// MotoAccountID is the account in moto's queue URLs.
const MotoAccountID = "123456789012"

// Moto is a running moto_server that checks credentials.
type Moto struct {
	Endpoint string
	// AccessKeyID and SecretAccessKey belong to an IAM user allowed sqs:*.
	AccessKeyID, SecretAccessKey string
	// DeniedKeyID and DeniedSecret belong to an IAM user with no policy:
	// its signature is valid, its requests are denied.
	DeniedKeyID, DeniedSecret string
}

// MotoServer returns the moto_server program, or "".
func MotoServer() string {
	if p := os.Getenv("SLUICE_MOTO_SERVER"); p != "" {
		return p
	}
	p, _ := exec.LookPath("moto_server")
	return p
}

// StartMoto starts moto_server on a free loopback port with request
// authentication on (INITIAL_NO_AUTH_ACTION_COUNT: the first few requests,
// which create the IAM users, are not checked; every later one is), and
// creates the IAM users. It is killed when the test ends.
func StartMoto(t testing.TB) *Moto {
	t.Helper()
	bin := MotoServer()
	if bin == "" {
		testenv.Missing(t, "moto_server", `run scripts/deps/sqs.sh (PyPI "moto[server]")`)
	}
	const setupActions = 5 // CreateUser ×2, CreateAccessKey ×2, PutUserPolicy
	log := &syncbuf.Buffer{}
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", "0")
	cmd.Env = append(os.Environ(), fmt.Sprintf("INITIAL_NO_AUTH_ACTION_COUNT=%d", setupActions))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start moto_server: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("moto_server log (last lines):\n%s", tail(log.String(), 20))
		}
	})
	portRE := regexp.MustCompile(`Running on (http://127\.0\.0\.1:[0-9]+)`)
	deadline := time.Now().Add(startLimit)
	m := &Moto{}
	for {
		if sm := portRE.FindStringSubmatch(log.String()); sm != nil {
			m.Endpoint = sm[1]
			break
		}
		select {
		case <-done:
			t.Fatalf("moto_server exited during start-up:\n%s", tail(log.String(), 20))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto_server not started after %v:\n%s", startLimit, tail(log.String(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	iam := func(params url.Values) string {
		params.Set("Version", "2010-05-08")
		req, _ := http.NewRequest("POST", m.Endpoint+"/", strings.NewReader(params.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		// moto picks the service from the credential scope; the setup
		// requests are not verified, so the signature is a placeholder.
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDSETUP/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("moto IAM %s: %v", params.Get("Action"), err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("moto IAM %s: %d %s", params.Get("Action"), resp.StatusCode, b)
		}
		return string(b)
	}
	key := func(user string) (string, string) {
		iam(url.Values{"Action": {"CreateUser"}, "UserName": {user}})
		out := iam(url.Values{"Action": {"CreateAccessKey"}, "UserName": {user}})
		id := regexp.MustCompile(`<AccessKeyId>([^<]+)</AccessKeyId>`).FindStringSubmatch(out)
		secret := regexp.MustCompile(`<SecretAccessKey>([^<]+)</SecretAccessKey>`).FindStringSubmatch(out)
		if id == nil || secret == nil {
			t.Fatalf("moto CreateAccessKey: unexpected answer %s", out)
		}
		return id[1], secret[1]
	}
	m.AccessKeyID, m.SecretAccessKey = key("sluice")
	m.DeniedKeyID, m.DeniedSecret = key("nobody")
	iam(url.Values{"Action": {"PutUserPolicy"}, "UserName": {"sluice"}, "PolicyName": {"sqs"},
		"PolicyDocument": {`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sqs:*","Resource":"*"}]}`}})
	return m
}

// QueueURL is the URL of queue name.
func (m *Moto) QueueURL(name string) string {
	return fmt.Sprintf("%s/%s/%s", m.Endpoint, MotoAccountID, name)
}
