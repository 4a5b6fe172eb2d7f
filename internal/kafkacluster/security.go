package kafkacluster

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// TLSFiles are the PEM files GenerateTLS writes.
type TLSFiles struct {
	CA         string // the CA certificate
	BrokerKey  string // broker key (PKCS#8) + certificate, for Security.KeyFile
	ClientCert string // client certificate, CN=ClientCN, for mutual TLS
	ClientKey  string
}

// ClientCN is the common name of the generated client certificate; its
// Kafka principal is "User:CN=" + ClientCN.
const ClientCN = "sluice-client"

// GenerateTLS writes a fresh CA, a broker certificate for 127.0.0.1 and
// localhost, and a client certificate into dir.
func GenerateTLS(dir string) (TLSFiles, error) {
	f := TLSFiles{
		CA: filepath.Join(dir, "ca.pem"), BrokerKey: filepath.Join(dir, "broker.pem"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem"),
	}
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return f, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return f, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, server bool) ([]byte, []byte, error) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if server {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
			tmpl.DNSNames = []string{"localhost"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return nil, nil, err
		}
		k8, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k8}), nil
	}
	bCert, bKey, err := leaf(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, true)
	if err != nil {
		return f, err
	}
	cCert, cKey, err := leaf(3, ClientCN, x509.ExtKeyUsageClientAuth, false)
	if err != nil {
		return f, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	for path, b := range map[string][]byte{
		f.CA: caPEM, f.BrokerKey: append(append(bKey, bCert...), caPEM...),
		f.ClientCert: cCert, f.ClientKey: cKey,
	} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return f, err
		}
	}
	return f, nil
}

// SetSCRAM creates or replaces user's SCRAM-SHA-512 credential.
func (c *Cluster) SetSCRAM(ctx context.Context, user, password string) error {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	const iterations = 4096
	salted, err := pbkdf2.Key(sha512.New, password, salt, iterations, sha512.Size)
	if err != nil {
		return err
	}
	return c.eachClient(ctx, func(cl *kafkago.Client) error {
		r, err := cl.AlterUserScramCredentials(ctx, &kafkago.AlterUserScramCredentialsRequest{
			Upsertions: []kafkago.UserScramCredentialsUpsertion{{
				Name: user, Mechanism: kafkago.ScramMechanismSha512, Iterations: iterations, Salt: salt, SaltedPassword: salted,
			}},
		})
		if err != nil {
			return err
		}
		for _, res := range r.Results {
			if res.Error != nil {
				return res.Error
			}
		}
		return nil
	})
}

// AllowWrite grants principal ("User:name") Write on topic.
func (c *Cluster) AllowWrite(ctx context.Context, principal, topic string) error {
	return c.eachClient(ctx, func(cl *kafkago.Client) error {
		r, err := cl.CreateACLs(ctx, &kafkago.CreateACLsRequest{ACLs: []kafkago.ACLEntry{{
			ResourceType: kafkago.ResourceTypeTopic, ResourceName: topic, ResourcePatternType: kafkago.PatternTypeLiteral,
			Principal: principal, Host: "*", Operation: kafkago.ACLOperationTypeWrite, PermissionType: kafkago.ACLPermissionTypeAllow,
		}}})
		if err != nil {
			return err
		}
		return errors.Join(r.Errors...)
	})
}

// eachClient runs f with a kafka-go Client on each live node in turn until
// one succeeds.
func (c *Cluster) eachClient(ctx context.Context, f func(*kafkago.Client) error) error {
	err := ErrNotRunning
	for _, a := range c.live() {
		t := &kafkago.Transport{ClientID: "kafkacluster"}
		err = f(&kafkago.Client{Addr: kafkago.TCP(a), Timeout: 30 * time.Second, Transport: t})
		t.CloseIdleConnections()
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("kafkacluster: %w", err)
	}
	return nil
}
