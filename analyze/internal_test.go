package analyze

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

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

// TestStartsBefore checks the skew comparison against time.Time's own,
// for times near now and far from it, with tolerances of either sign.
func TestStartsBefore(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	bases := []time.Time{now, time.Now(), time.Unix(0, 0), time.Date(1800, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), {}}
	for i := 0; i < 100000; i++ {
		p := bases[rng.IntN(len(bases))].Add(time.Duration(rng.Int64N(1 << 40)))
		s := p.Add(time.Duration(rng.Int64N(1<<12) - 1<<11))
		if rng.IntN(4) == 0 {
			s = bases[rng.IntN(len(bases))] // another era
		}
		tol := time.Duration(rng.Int64N(1<<12) - 1<<10)
		if got, want := startsBefore(s, p, tol), s.Before(p.Add(-tol)); got != want {
			t.Fatalf("span at %v, parent at %v, tolerance %v: %v, want %v", s, p, tol, got, want)
		}
	}
}

// TestHopTable: a hop table that grows from its smallest size finds every
// hop's finding again, by the addresses of its names.
func TestHopTable(t *testing.T) {
	names := make([]string, 30)
	for i := range names {
		names[i] = "name-" + string(rune('a'+i%26)) + string(rune('0'+i/26))
	}
	key := func(i, j, k int) hopKey {
		return hopKey{addrOf(names[i]), addrOf(names[j]), addrOf(names[k])}
	}
	h := newHopTable(0)
	want := map[hopKey]*finding{}
	for i := range 10 {
		for j := 10; j < 20; j++ {
			for k := 20; k < 30; k++ {
				hk := key(i, j, k)
				sl := h.slot(hk)
				if sl.f != nil {
					t.Fatalf("%d %d %d found before it was put", i, j, k)
				}
				f := &finding{}
				h.put(sl, hk, f)
				want[hk] = f
			}
		}
	}
	if len(h.slots) < 2*len(want) {
		t.Fatalf("%d slots for %d hops: the table did not grow", len(h.slots), len(want))
	}
	for hk, f := range want {
		if got := h.slot(hk).f; got != f {
			t.Fatalf("hop %v: found %p, want %p", hk, got, f)
		}
	}
}
