// Package tlsconf builds the client TLS configuration the sinks share: a CA
// bundle, an optional client certificate, a server name to verify and, for
// testing only, no verification.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Client builds a client TLS configuration with TLS 1.2 at least.
//
//   - caFile: PEM bundle of the CAs that sign the servers' certificates;
//     "" = the system roots.
//   - certFile, keyFile: PEM client certificate and key for mutual TLS;
//     both or neither.
//   - serverName: the name to verify in the servers' certificates; "" = the
//     host dialled.
//   - insecure: skip verifying the servers' certificates (testing only).
//
// Errors start with prefix ("kafka", "nats", ...) and name the file.
func Client(prefix, caFile, certFile, keyFile, serverName string, insecure bool) (*tls.Config, error) {
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         serverName,
		InsecureSkipVerify: insecure, //nolint:gosec // operator's explicit choice
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%s: tls: read ca file: %w", prefix, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: tls: no PEM certificate in ca file %s", prefix, caFile)
		}
		c.RootCAs = pool
	}
	switch {
	case certFile != "" && keyFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%s: tls: load client certificate %s: %w", prefix, certFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	case certFile != "" || keyFile != "":
		return nil, errors.New(prefix + ": tls: client certificate and key must be given together")
	}
	return c, nil
}
