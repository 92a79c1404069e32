package graph_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ktrace-dev/ktrace/graph"
)

// RoundLatency keeps the order of latencies, is its own fixed point, and
// stays within 0.4% (exact under 256 ns).
func TestRoundLatency(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	vals := []int64{math.MinInt64, math.MinInt64 + 1, -1 << 40, -300, -255, -1, 0, 1, 127, 255, 256, 257, 511, 512, 1e6, 1<<40 + 12345, math.MaxInt64}
	for range 20000 {
		vals = append(vals, rng.Int64N(1<<uint(rng.IntN(62)+1))*[]int64{1, -1}[rng.IntN(2)])
	}
	slices.Sort(vals)
	prev := int64(math.MinInt64)
	for _, v := range vals {
		r := graph.RoundLatency(v)
		if r < prev {
			t.Fatalf("RoundLatency(%d) = %d, below the rounding of a smaller latency (%d)", v, r, prev)
		}
		prev = r
		if graph.RoundLatency(r) != r {
			t.Fatalf("RoundLatency(%d) = %d, which rounds to %d", v, r, graph.RoundLatency(r))
		}
		if a := math.Abs(float64(v)); a < 256 && r != v || math.Abs(float64(r)-float64(v)) > a/256 {
			t.Fatalf("RoundLatency(%d) = %d: off by more than 0.4%%", v, r)
		}
	}
}

// Percentiles are exact up to ExactSamples samples, rounded past it.
func TestPercentilesRounded(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{graph.ExactSamples, graph.ExactSamples + 1} {
		lat := make([]int64, n)
		for i := range lat {
			lat[i] = 1_000_000 + rng.Int64N(1_000_000)
		}
		s := slices.Sorted(slices.Values(lat))
		want := s[(50*n+99)/100-1]
		if n > graph.ExactSamples {
			want = graph.RoundLatency(want)
		}
		if p50, _, _ := graph.Percentiles(lat); p50 != time.Duration(want) {
			t.Errorf("%d samples: p50 %d, want %d", n, p50, want)
		}
	}
}
