package testenv

import (
	"context"
	"testing"

	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/trace"
)

// Result is the partial result a ktrace stream member publishes for ts:
// the engine's mergeable encoding.
func Result(t testing.TB, ts []trace.Trace) []byte {
	t.Helper()
	p, err := engine.Collect(context.Background(), engine.Slice(ts), engine.Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	data, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return data
}
