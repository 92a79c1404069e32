package graph

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ktrace-dev/ktrace/trace"
)

// TestJoinIndex holds the join index to a map of slices: every key finds
// exactly the entries added under it, and absent keys find none.
func TestJoinIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 100, 5000} {
		x := newJoinIndex[recordKey](n)
		want := map[recordKey][]int32{}
		for e := 0; e < n; e++ {
			// A small key space, so that keys repeat and hashes collide.
			k := recordKey{int32(rng.IntN(3)), int32(rng.IntN(4)), int64(rng.IntN(max(1, n/3)))}
			x.add(hashRecord(k), k)
			want[k] = append(want[k], int32(e))
		}
		for k, es := range want {
			var got []int32
			for e := x.last(hashRecord(k), k); e > 0; e = x.next[e-1] {
				got = append(got, e-1)
			}
			slices.Sort(got)
			if !slices.Equal(got, es) {
				t.Fatalf("n %d: key %v finds entries %v, want %v", n, k, got, es)
			}
		}
		for i := 0; i < 100; i++ {
			k := recordKey{int32(rng.IntN(3)), int32(rng.IntN(4)), int64(n + i)}
			if e := x.last(hashRecord(k), k); e != 0 {
				t.Fatalf("n %d: absent key %v finds entry %d", n, k, e-1)
			}
		}
	}
	s := newJoinIndex[spanKey](2)
	a, b := spanKey{trace.TraceID{High: 1, Low: 2}, 3}, spanKey{trace.TraceID{High: 2, Low: 1}, 3}
	s.add(hashSpan(a), a)
	if s.last(hashSpan(a), a) != 1 || s.last(hashSpan(b), b) != 0 {
		t.Fatal("span keys that differ only in the trace ID's halves are confused")
	}
}
