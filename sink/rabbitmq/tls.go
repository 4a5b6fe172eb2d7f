package rabbitmq

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSConfig builds the client TLS configuration for Options.TLS (used with
// amqps:// URLs).
//
//   - caFile: PEM bundle of the CAs that sign the broker's certificate;
//     "" = the system roots.
//   - certFile, keyFile: PEM client certificate and key for mutual TLS;
//     both or neither.
//   - serverName: the name to verify in the broker's certificate; "" = the
//     URL's host.
//
// The minimum version is TLS 1.2.
func TLSConfig(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("rabbitmq: tls: read ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("rabbitmq: tls: no PEM certificate in ca file %s", caFile)
		}
		c.RootCAs = pool
	}
	switch {
	case certFile != "" && keyFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("rabbitmq: tls: load client certificate %s: %w", certFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	case certFile != "" || keyFile != "":
		return nil, errors.New("rabbitmq: tls: client certificate and key must be given together")
	}
	return c, nil
}
