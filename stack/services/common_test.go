package services

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/ktrace-dev/ktrace/stream"
)

// TestUnreachableKafka: a service that cannot reach its broker stops at
// once with one line naming the broker as it was given (stream.Kafka's
// message, shared with `ktrace stream` and `stack up`).
func TestUnreachableKafka(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	err = RunFlatten(context.Background(), Config{Kafka: stream.Kafka{Brokers: []string{addr}}, Health: "127.0.0.1:0", Log: &strings.Builder{}})
	if err == nil || !strings.HasPrefix(err.Error(), "cannot reach Kafka at "+addr+":") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("got %v, want one line starting %q", err, "cannot reach Kafka at "+addr+":")
	}
}
