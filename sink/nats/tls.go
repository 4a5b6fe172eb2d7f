package nats

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSConfig builds the client TLS configuration for Options.TLS.
//
//   - caFile: PEM bundle of the CAs that sign the servers' certificates;
//     "" = the system roots.
//   - certFile, keyFile: PEM client certificate and key for mutual TLS;
//     both or neither.
//   - serverName: the name to verify in the servers' certificates; "" =
//     the host of each server URL.
//   - insecure: skip verifying the servers' certificates (testing only).
//
// The minimum version is TLS 1.2.
func TLSConfig(caFile, certFile, keyFile, serverName string, insecure bool) (*tls.Config, error) {
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         serverName,
		InsecureSkipVerify: insecure, //nolint:gosec // operator's explicit choice
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("nats: tls: read ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("nats: tls: no PEM certificate in ca file %s", caFile)
		}
		c.RootCAs = pool
	}
	switch {
	case certFile != "" && keyFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("nats: tls: load client certificate %s: %w", certFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	case certFile != "" || keyFile != "":
		return nil, errors.New("nats: tls: client certificate and key must be given together")
	}
	return c, nil
}
