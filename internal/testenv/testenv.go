// Package testenv starts the real services ktrace's tests talk to, and holds
// what several packages' tests compare results by.
package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/ktrace-dev/ktrace/stack/jaeger"
)

// Jaeger starts a real Jaeger v2 on free loopback ports for the test and
// stops it at cleanup. A missing binary fails the test: tests never skip.
func Jaeger(t testing.TB) *jaeger.Process {
	t.Helper()
	return start(t, false)
}

// JaegerBadger is Jaeger keeping its traces in Badger.
func JaegerBadger(t testing.TB) *jaeger.Process {
	t.Helper()
	return start(t, true)
}

func start(t testing.TB, persist bool) *jaeger.Process {
	t.Helper()
	bin, err := jaeger.FindBinary("")
	if err != nil {
		t.Fatalf("%v: the README's test command (scripts/test) installs it", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := jaeger.Start(ctx, jaeger.Options{Bin: bin, Dir: t.TempDir(), Persist: persist})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}
