package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCA makes a certificate authority and a server certificate it signs
// for 127.0.0.1, valid for an hour: the authority's certificate written
// to a PEM file (for a client's CA flag), and the server's certificate.
func TestCA(t testing.TB) (caFile string, server tls.Certificate) {
	pki := TestPKI(t)
	return pki.CAFile, pki.Server
}

// PKI is a test certificate authority and what it signed.
type PKI struct {
	// CAFile is the authority's certificate (PEM), CA the same as a pool
	// (for a server that asks clients for certificates).
	CAFile string
	CA     *x509.CertPool
	// Server is a certificate for 127.0.0.1.
	Server tls.Certificate
	// ClientCert and ClientKey are PEM files of a client's certificate
	// and key (for mutual TLS).
	ClientCert, ClientKey string
}

// TestPKI makes a certificate authority, a server certificate for
// 127.0.0.1 and a client certificate, all valid for an hour.
func TestPKI(t testing.TB) PKI {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, serverKey, clientKey := key(), key(), key()
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ktrace test CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	serverTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	serverDER, err := x509.CreateCertificate(rand.Reader, serverTmpl, caCert, &serverKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	clientTmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "ktrace test client"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	clientDER, err := x509.CreateCertificate(rand.Reader, clientTmpl, caCert, &clientKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	clientKeyDER, err := x509.MarshalECPrivateKey(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return PKI{
		CAFile: write("ca.pem", "CERTIFICATE", caDER), CA: pool,
		Server:     tls.Certificate{Certificate: [][]byte{serverDER}, PrivateKey: serverKey},
		ClientCert: write("client.pem", "CERTIFICATE", clientDER), ClientKey: write("client-key.pem", "EC PRIVATE KEY", clientKeyDER),
	}
}
