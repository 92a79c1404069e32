package jaeger

import (
	"context"
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
	"strings"
	"testing"
	"time"

	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// selfSigned writes a CA-signed server certificate for 127.0.0.1 and returns
// the CA file and the server's TLS certificate.
func selfSigned(t *testing.T) (string, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ktrace test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "jaeger"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	caCert, _ := x509.ParseCertificate(caDER)
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	return caFile, tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
}

func TestTLS(t *testing.T) {
	caFile, cert := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.ForceServerCodec(gogoCodec{}), grpc.Creds(credentials.NewServerTLSFromCert(&cert)))
	api_v2.RegisterQueryServiceServer(g, &store{spans: spans(2, time.Millisecond, true), token: "t0k"})
	go g.Serve(ln)
	defer g.Stop()
	addr := ln.Addr().String()

	c, err := Dial(Config{Addr: addr, TLS: true, CAFile: caFile, Token: "t0k"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if svcs, err := c.Services(context.Background()); err != nil || len(svcs) != 2 {
		t.Fatalf("over TLS with the CA: %v %v", svcs, err)
	}
	// Without the CA the server is not trusted.
	bad, _ := Dial(Config{Addr: addr, TLS: true, Timeout: 5 * time.Second})
	defer bad.Close()
	if _, err := bad.Services(context.Background()); err == nil || !strings.Contains(err.Error(), "jaeger at "+addr) {
		t.Errorf("untrusted server accepted: %v", err)
	}
	if _, err := Dial(Config{Addr: addr, TLS: true, CAFile: "/nonexistent.pem"}); err == nil {
		t.Error("missing CA file accepted")
	}
}
