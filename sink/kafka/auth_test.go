package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluiceio/sluice/internal/syncbuf"
	"github.com/sluiceio/sluice/sink"
)

func TestSASL(t *testing.T) {
	for _, tc := range []struct {
		mech, kfakeMech string
		kgoOpt          kgo.Opt
	}{
		{"plain", "PLAIN", kgo.SASL(plain.Auth{User: "admin", Pass: "s3cret-pw"}.AsMechanism())},
		{"scram-sha-256", "SCRAM-SHA-256", kgo.SASL(scram.Auth{User: "admin", Pass: "s3cret-pw"}.AsSha256Mechanism())},
		{"SCRAM-SHA-512", "SCRAM-SHA-512", kgo.SASL(scram.Auth{User: "admin", Pass: "s3cret-pw"}.AsSha512Mechanism())},
	} {
		t.Run(tc.mech, func(t *testing.T) {
			_, addr := newCluster(t, kfake.SeedTopics(2, "t"), kfake.EnableSASL(), kfake.Superuser(tc.kfakeMech, "admin", "s3cret-pw"))

			set := metrics.NewSet()
			logs := &syncbuf.Buffer{}
			bad := newWriter(t, addr, Options{
				Name: "bad", Metrics: set, Logger: debugLogger(logs),
				SASL: SASL{Mechanism: tc.mech, Username: "admin", Password: "wrong-pw"},
			})
			for i := 0; i < 2; i++ {
				err := bad.Write(context.Background(), testMsgs("t", "bad", 2, 1))
				if !isTransient(err) || sink.Reason(err) != ReasonAuth {
					t.Fatalf("wrong password: %v (reason %s), want transient auth", err, sink.Reason(err))
				}
				if strings.Contains(err.Error(), "wrong-pw") {
					t.Fatalf("password in error: %v", err)
				}
			}
			if v := metricValue(set, `sluice_sink_auth_failing{sink="bad"}`); v != "1" {
				t.Errorf("auth_failing = %q, want 1", v)
			}

			good := newWriter(t, addr, Options{
				Name: "good", Metrics: set, Logger: debugLogger(logs),
				SASL: SASL{Mechanism: tc.mech, Username: "admin", Password: "s3cret-pw"},
			})
			msgs := testMsgs("t", "good", 5, 2)
			mustWrite(t, good, msgs)
			recs := byID(t, consume(t, addr, "t", len(msgs), tc.kgoOpt))
			for _, m := range msgs {
				if r, ok := recs[m.ID]; !ok || !m.Delivered || r.Offset != m.DeliveredOffset {
					t.Errorf("%s not delivered as reported", m.ID)
				}
			}
			if v := metricValue(set, `sluice_sink_auth_failing{sink="good"}`); v != "0" {
				t.Errorf("auth_failing of the good writer = %q, want 0", v)
			}
			if l := logs.String(); strings.Contains(l, "wrong-pw") || strings.Contains(l, "s3cret-pw") {
				t.Errorf("password in logs:\n%s", l)
			}
			if s := fmt.Sprintf("%v %+v %#v", good.cfg.SASL, good.cfg.Options, good.cfg.SASL); strings.Contains(s, "s3cret-pw") {
				t.Errorf("password in formatted options: %s", s)
			}
		})
	}
}

// testPKI writes a CA, a broker certificate for 127.0.0.1 and a client
// certificate into dir.
type testPKI struct {
	dir                       string
	caFile, certFile, keyFile string
	serverCert                tls.Certificate
	pool                      *x509.CertPool
	otherCAFile               string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	p := &testPKI{dir: dir, pool: x509.NewCertPool()}

	ca, caKey := makeCert(t, "sluice test CA", nil, nil, true)
	p.pool.AddCert(ca)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Raw)
	other, _ := makeCert(t, "other CA", nil, nil, true)
	p.otherCAFile = writePEM(t, dir, "other.pem", "CERTIFICATE", other.Raw)

	srv, srvKey := makeCert(t, "broker", ca, caKey, false)
	p.serverCert = tls.Certificate{Certificate: [][]byte{srv.Raw}, PrivateKey: srvKey}

	cli, cliKey := makeCert(t, "sluice client", ca, caKey, false)
	p.certFile = writePEM(t, dir, "client.pem", "CERTIFICATE", cli.Raw)
	der, err := x509.MarshalECPrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	p.keyFile = writePEM(t, dir, "client-key.pem", "EC PRIVATE KEY", der)
	return p
}

func makeCert(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTLS(t *testing.T) {
	p := newTestPKI(t)
	_, addr := newCluster(t, kfake.SeedTopics(1, "t"), kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{p.serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.pool,
		MinVersion:   tls.VersionTLS12,
	}))

	cfg, err := TLSConfig(p.caFile, p.certFile, p.keyFile, "", false)
	if err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, addr, Options{TLS: cfg})
	msgs := testMsgs("t", "tls", 3, 1)
	mustWrite(t, w, msgs)
	consume(t, addr, "t", len(msgs), kgo.DialTLSConfig(&tls.Config{
		RootCAs: p.pool, Certificates: cfg.Certificates, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12,
	}))

	// A broker certificate signed by a CA we do not trust: transient tls.
	wrongCA, err := TLSConfig(p.otherCAFile, p.certFile, p.keyFile, "", false)
	if err != nil {
		t.Fatal(err)
	}
	w2 := newWriter(t, addr, Options{TLS: wrongCA})
	if err := w2.Write(context.Background(), testMsgs("t", "x", 1, 1)); !isTransient(err) || sink.Reason(err) != ReasonTLS {
		t.Fatalf("untrusted broker: %v (reason %s), want transient tls", err, sink.Reason(err))
	}
}

func TestTLSConfigErrors(t *testing.T) {
	p := newTestPKI(t)
	if _, err := TLSConfig(filepath.Join(p.dir, "missing.pem"), "", "", "", false); err == nil {
		t.Error("missing ca file: no error")
	}
	if _, err := TLSConfig(p.keyFile, "", "", "", false); err == nil {
		t.Error("ca file without certificates: no error")
	}
	if _, err := TLSConfig("", p.certFile, "", "", false); err == nil {
		t.Error("cert without key: no error")
	}
	c, err := TLSConfig("", "", "", "kafka.example", true)
	if err != nil || c.ServerName != "kafka.example" || !c.InsecureSkipVerify || c.MinVersion != tls.VersionTLS12 {
		t.Errorf("got %+v, %v", c, err)
	}
}
