package analyze

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ktrace-dev/ktrace/trace"
)

// TestAddExample checks that a finding keeps the MaxExamples smallest
// distinct trace IDs, sorted, whatever order they come in: rising (the
// usual order, taken without a search), falling, shuffled, repeated.
func TestAddExample(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for round := 0; round < 2000; round++ {
		n := rng.IntN(12)
		ids := make([]trace.TraceID, n)
		for i := range ids {
			ids[i] = trace.TraceID{High: uint64(rng.IntN(2)), Low: uint64(rng.IntN(8))}
		}
		switch round % 3 {
		case 0:
			slices.SortFunc(ids, cmpID)
		case 1:
			slices.SortFunc(ids, func(a, b trace.TraceID) int { return cmpID(b, a) })
		}
		var got []trace.TraceID
		for _, id := range ids {
			got = addExample(got, id)
		}
		want := slices.Compact(slices.SortedFunc(slices.Values(ids), cmpID))
		if len(want) > MaxExamples {
			want = want[:MaxExamples]
		}
		if !slices.Equal(got, want) {
			t.Fatalf("from %v: kept %v, want %v", ids, got, want)
		}
	}
}

func cmpID(a, b trace.TraceID) int {
	switch {
	case less(a, b):
		return -1
	case less(b, a):
		return 1
	}
	return 0
}
