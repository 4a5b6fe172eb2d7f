package kafka

import (
	"crypto/tls"

	"github.com/sluiceio/sluice/sink/internal/tlsconf"
)

// TLSConfig builds the client TLS configuration for Options.TLS.
//
//   - caFile: PEM bundle of the CAs that sign the brokers' certificates;
//     "" = the system roots.
//   - certFile, keyFile: PEM client certificate and key for mutual TLS;
//     both or neither.
//   - serverName: the name to verify in the brokers' certificates; "" =
//     the host of each broker address.
//   - insecure: skip verifying the brokers' certificates (testing only).
//
// The minimum version is TLS 1.2.
func TLSConfig(caFile, certFile, keyFile, serverName string, insecure bool) (*tls.Config, error) {
	return tlsconf.Client("kafka", caFile, certFile, keyFile, serverName, insecure)
}
