package rabbitmq

import (
	"crypto/tls"

	"github.com/sluiceio/sluice/sink/internal/tlsconf"
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
	return tlsconf.Client("rabbitmq", caFile, certFile, keyFile, serverName, false)
}
