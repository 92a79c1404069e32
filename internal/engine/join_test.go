package engine

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

// TestProducerStretches: the stretches of producers lo to hi, across runs
// (merged ones with their node maps) and chunk boundaries, are those
// producers in order, each as its run numbers it.
func TestProducerStretches(t *testing.T) {
	var ps producers
	add := func(n int, base int64) {
		for i := 0; i < n; i++ {
			ps.add(producer{offset: base + int64(i)})
		}
	}
	add(chunkLen+3, 0)
	var o producers
	for i := 0; i < 2*chunkLen+1; i++ {
		o.add(producer{offset: 1_000_000 + int64(i)})
	}
	ps.merge(&o, []int32{0})
	add(5, 2_000_000) // a run of the builder's own after a merged one
	var all []int64
	for _, r := range ps.runs {
		for _, c := range r.list.Chunks() {
			for _, p := range c {
				all = append(all, p.offset)
			}
		}
	}
	if len(all) != ps.Len() {
		t.Fatalf("%d producers in the runs, Len %d", len(all), ps.Len())
	}
	rng := rand.New(rand.NewPCG(3, 3))
	cuts := []int{0, 1, chunkLen - 1, chunkLen, chunkLen + 3, chunkLen + 4, 2 * chunkLen, 3*chunkLen + 4, ps.Len() - 1, ps.Len()}
	for range 200 {
		cuts = append(cuts, rng.IntN(ps.Len()+1))
	}
	for _, lo := range cuts {
		for _, hi := range cuts[:12] {
			var got []int64
			ps.stretches(lo, hi, func(run *producerRun, c []producer) {
				if len(c) == 0 {
					t.Fatalf("[%d, %d): an empty stretch", lo, hi)
				}
				for _, p := range c {
					got = append(got, p.offset)
				}
			})
			var want []int64
			if lo < hi {
				want = all[lo:hi]
			}
			if !slices.Equal(got, want) {
				t.Fatalf("[%d, %d): %d producers from %v, want %d from %v", lo, hi, len(got), first3(got), len(want), first3(want))
			}
		}
	}
}

func first3(s []int64) []int64 { return s[:min(3, len(s))] }
