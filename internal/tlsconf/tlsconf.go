// Package tlsconf makes the TLS configuration of a client from the files
// its flags name.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// Load makes a client's TLS configuration: ca, when given, is a PEM file
// of the certificates that may sign the server's (else the system's);
// cert and key, when given, PEM files of the client's certificate and key
// (mutual TLS); serverName overrides the name checked in the server's
// certificate. Errors name the files by their flags, --PREFIX-ca and so
// on.
func Load(prefix, ca, cert, key, serverName string) (*tls.Config, error) {
	tc := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("reading --%s-ca: %w", prefix, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--%s-ca %s: no PEM certificates in it", prefix, ca)
		}
		tc.RootCAs = pool
	}
	if cert != "" || key != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("loading --%s-cert/--%s-key: %w", prefix, prefix, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}
