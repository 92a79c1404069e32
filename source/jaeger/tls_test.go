package jaeger

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ktrace-dev/ktrace/internal/testenv"
)

func TestTLS(t *testing.T) {
	caFile, cert := testenv.TestCA(t)
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
