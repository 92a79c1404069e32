package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/ktrace-dev/ktrace/graph"
)

// TestPercentilesRanks holds the percentiles found by ranks to those of a
// sorted copy, on many shapes: sorted, reversed, all equal, few distinct
// values, organ pipes, the int64 extremes, a long tail, and random with
// negatives; and the samples are left as they were. One ranker is also
// used for every case in turn, as finishEdges uses one for edge after
// edge: what a call leaves in it must not change the next call's answer.
func TestPercentilesRanks(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var shared ranker
	shapes := map[string]func(i, n int) int64{
		"random":    func(i, n int) int64 { return rng.Int64N(1_000_000) - 1000 },
		"sorted":    func(i, n int) int64 { return int64(i) },
		"reversed":  func(i, n int) int64 { return int64(n - i) },
		"equal":     func(i, n int) int64 { return 42 },
		"few":       func(i, n int) int64 { return int64(rng.IntN(3)) },
		"organpipe": func(i, n int) int64 { return int64(min(i, n-i)) },
		"extremes":  func(i, n int) int64 { return []int64{math.MinInt64, math.MaxInt64, 0, -1, 1}[i%5] },
		"longtail":  func(i, n int) int64 { return int64(rng.ExpFloat64() * 1e5) },
	}
	for name, f := range shapes {
		for _, n := range []int{1, 2, 3, 17, 100, 101, 1000, 65537} {
			lat := make([]int64, n)
			for i := range lat {
				lat[i] = f(i, n)
			}
			sorted := slices.Sorted(slices.Values(lat))
			rank := func(p int) time.Duration { return time.Duration(sorted[max(0, (p*n+99)/100-1)]) }
			p50, p95, p99 := percentiles(lat)
			if p50 != rank(50) || p95 != rank(95) || p99 != rank(99) {
				t.Errorf("%s, %d samples: %v %v %v, want %v %v %v", name, n, p50, p95, p99, rank(50), rank(95), rank(99))
			}
			if got := slices.Sorted(slices.Values(lat)); !slices.Equal(got, sorted) {
				t.Errorf("%s, %d samples: the samples changed", name, n)
			}
			if q50, q95, q99 := shared.percentiles(lat); q50 != p50 || q95 != p95 || q99 != p99 {
				t.Errorf("%s, %d samples, a ranker used before: %v %v %v, want %v %v %v", name, n, q50, q95, q99, p50, p95, p99)
			}
		}
	}
}

// BenchmarkPercentiles: a million varied samples.
func BenchmarkPercentiles(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	src := make([]int64, 1_000_000)
	for i := range src {
		src[i] = rng.Int64N(10_000_000)
	}
	for b.Loop() {
		percentiles(src)
	}
}

// BenchmarkPercentilesManyEdges: the shape finishEdges meets, many
// edges with a few hundred samples each (1200 edges, 600,000 samples in
// all, as in the 1M-span synthetic set), each edge's samples in one
// stretch of an array, as gatherSamples leaves them.
func BenchmarkPercentilesManyEdges(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	var all []int64
	ends := make([]int, 1200)
	for i := range ends {
		for range 1 + rng.IntN(999) {
			all = append(all, 1000+int64(rng.ExpFloat64()*2e6))
		}
		ends[i] = len(all)
	}
	var r ranker // as finishEdges keeps one per goroutine
	for b.Loop() {
		from := 0
		for _, end := range ends {
			r.percentiles(all[from:end])
			from = end
		}
	}
}

// TestFinishPercentilesOnEveryCPU: the edges' percentiles, gathered from
// two builders' logs and worked out by several goroutines taking edges in
// turn, are each edge's own; also when the first log was gathered early,
// on a goroutine of its own (as Graph gathers the walk's samples while it
// resolves the pending consumers), and the second holds what came later.
func TestFinishPercentilesOnEveryCPU(t *testing.T) {
	procs := runtime.GOMAXPROCS(4)
	defer runtime.GOMAXPROCS(procs)
	for _, early := range []bool{false, true} {
		rng := rand.New(rand.NewPCG(7, 8))
		var edges []*edge
		want := map[*edge][3]time.Duration{}
		total := 0
		// Two builders' logs, as a merge leaves them: each numbers the
		// edges its own way, and the samples of all edges come mixed.
		const nEdges = 40
		var logs [2]sampleLog
		renumber := rng.Perm(nEdges) // the second log's numbers
		for k := range logs {
			logs[k].edges = make([]*edge, nEdges)
		}
		type taken struct {
			log, edge int
			v         int64
		}
		var mixed []taken
		inFirst := make([]int, nEdges)
		for i := 0; i < nEdges; i++ {
			from := &node{name: fmt.Sprintf("a%02d", i)}
			to := &node{name: fmt.Sprintf("b%02d", i)}
			e := &edge{from: from, to: to, seq: int32(i)} // numbered as a builder numbers them
			logs[0].edges[i], logs[1].edges[renumber[i]] = e, e
			n := 1 + rng.IntN(10_000)*(i%3) // some edges small, some large
			var all []int64
			for range n {
				v := rng.Int64N(1e9)
				all = append(all, v)
				k := 0
				if i%2 == 0 && rng.IntN(3) == 0 { // some edges in both logs
					k = 1
				}
				if i%5 == 1 { // and some in the second only
					k = 1
				}
				if k == 0 {
					inFirst[i]++
				}
				mixed = append(mixed, taken{k, i, v})
			}
			total += n
			e.count, e.nlat = n, n // as observe counts the samples it adds
			p50, p95, p99 := graph.Percentiles(all)
			want[e] = [3]time.Duration{p50, p95, p99}
			edges = append(edges, e)
		}
		rng.Shuffle(len(mixed), func(a, b int) { mixed[a], mixed[b] = mixed[b], mixed[a] })
		for _, m := range mixed {
			num := m.edge
			if m.log == 1 {
				num = renumber[m.edge]
			}
			logs[m.log].list.reserve(1)
			logs[m.log].list.add(int32(num), m.v)
		}
		var gt *gathering
		late := logs[:]
		if early {
			for i, e := range edges {
				e.nlat = inFirst[i]
			}
			gt = startGather(edges, logs[:1])
			for _, e := range edges {
				e.nlat = e.count
			}
			late = logs[1:]
		}
		if total < parallelSamples {
			t.Fatalf("only %d samples: too few for the percentiles to be shared among goroutines", total)
		}
		// A caller's work runs meanwhile, reading the edges but their
		// percentiles (go test -race checks that they do not collide).
		called, counted := 0, 0
		finishEdges(edges, func() {
			called++
			for _, e := range edges {
				counted += e.count
			}
		}, gt, late)
		if called != 1 || counted != total {
			t.Fatalf("early %v: the caller's work ran %d times and counted %d samples, want once and %d", early, called, counted, total)
		}
		for e, w := range want {
			if got := [3]time.Duration{e.p50, e.p95, e.p99}; got != w {
				t.Errorf("early %v: edge %s → %s: percentiles %v, want %v", early, e.from.name, e.to.name, got, w)
			}
		}
	}
}

// TestLatLogGathered: samples logged by edge number, packed or whole (the
// extreme latencies, and edge numbers past what packs), are gathered back
// to their edges, every one.
func TestLatLogGathered(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	edges := []*edge{{seq: 0}, {seq: 1}, {seq: 2}}
	// A log's numbers for the three edges: more than 2^16 of them, as a
	// builder of many nodes may number its edges, most pointing at edge 0.
	var lg sampleLog
	lg.edges = make([]*edge, 1<<16+40)
	for j := range lg.edges {
		lg.edges[j] = edges[0]
	}
	nums := [][]int32{{0, 5, 1<<16 - 1, 1 << 16, 1<<16 + 39}, {1, 17, 1<<16 + 1}, {2, 1<<16 - 2}}
	for e, ns := range nums {
		for _, n := range ns {
			lg.edges[n] = edges[e]
		}
	}
	want := make([][]int64, 3)
	values := []int64{0, 1, -1, 1<<47 - 1, -1 << 47, 1 << 47, -1<<47 - 1, math.MaxInt64, math.MinInt64, 123456789}
	for range 5000 {
		e := rng.IntN(3)
		n := nums[e][rng.IntN(len(nums[e]))]
		v := values[rng.IntN(len(values))]
		if rng.IntN(2) == 0 {
			v = rng.Int64()
		}
		lg.list.reserve(1)
		lg.list.add(n, v)
		want[e] = append(want[e], v)
	}
	counts := make([]int, 3)
	for i := range edges {
		counts[i] = len(want[i])
	}
	if len(lg.list.wide) == 0 || len(lg.list.wide) == lg.list.Len() {
		t.Fatalf("%d of %d samples whole: the test should log both kinds", len(lg.list.wide), lg.list.Len())
	}
	lat := make([][]int64, 3)
	gatherSamples(edges, []sampleLog{lg}, counts, lat)
	for i := range edges {
		got, w := slices.Sorted(slices.Values(lat[i])), slices.Sorted(slices.Values(want[i]))
		if !slices.Equal(got, w) {
			t.Fatalf("edge %d: %d samples gathered, want %d (or they differ)", i, len(got), len(w))
		}
	}
}
