package engine

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/trace"
)

// TestAddExample checks that a finding keeps the analyze.MaxExamples smallest
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
		if len(want) > analyze.MaxExamples {
			want = want[:analyze.MaxExamples]
		}
		if !slices.Equal(got, want) {
			t.Fatalf("from %v: kept %v, want %v", ids, got, want)
		}
	}
}

func cmpID(a, b trace.TraceID) int {
	return graph.CompareTraceIDs(a, b)
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

// TestHopCounts: hop counts that grow from the smallest table count every
// hop's stitches apart, by its nodes: occurrences, distinct traces (a
// trace's stitches come together), the smallest trace IDs as examples, as
// a finding counts them, and the least group.
func TestHopCounts(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	nodes := make([]*node, 30)
	for i := range nodes {
		nodes[i] = &node{seq: int32(i)}
	}
	type hk struct{ i, j, k int }
	h := newHopCounts(0)
	want := map[hk]*finding{}
	var stitches []graph.Stitch
	var keys []hopKey
	for tr := range 3000 {
		tid := trace.TraceID{High: uint64(rng.IntN(4)), Low: uint64(tr)}
		for range 1 + rng.IntN(3) {
			k := hk{rng.IntN(10), 10 + rng.IntN(10), 20 + rng.IntN(10)}
			group := string(rune('a' + rng.IntN(3)))
			stitches = append(stitches, graph.Stitch{Consumer: graph.SpanRef{TraceID: tid}, Group: group})
			keys = append(keys, hopKey{nodes[k.i].seq, nodes[k.j].seq, nodes[k.k].seq})
			f := want[k]
			if f == nil {
				f = &finding{first: true}
				f.Group = group
				want[k] = f
			}
			f.Group = min(f.Group, group)
			f.count(tid)
		}
	}
	for i := range stitches {
		h.count(keys[i], &stitches[i])
	}
	if len(h.hops) != len(want) || len(h.slots) < 2*len(want) {
		t.Fatalf("%d hops in %d slots, want %d hops in at least twice as many", len(h.hops), len(h.slots), len(want))
	}
	for k, f := range want {
		c := h.find(hopKey{int32(k.i), int32(k.j), int32(k.k)}, nil)
		if c.occurrences != f.Occurrences || c.traces != f.Traces || !slices.Equal(c.ex, f.Examples) || c.last != f.last || c.group != f.Group {
			t.Fatalf("hop %v: %d occurrences in %d traces, examples %v, group %q; want %d in %d, %v, %q", k, c.occurrences, c.traces, c.ex, c.group, f.Occurrences, f.Traces, f.Examples, f.Group)
		}
	}
	if len(h.hops) != len(want) {
		t.Fatalf("finding the hops again made %d new ones", len(h.hops)-len(want))
	}
}

// TestHead: strings whose heads differ compare as their heads do (so the
// findings' sort may skip comparing their texts).
func TestHead(t *testing.T) {
	words := []string{"", "a", "a\x00", "ab", "abcdefgh", "abcdefgh2", "abcdefgi", "b", "svc-07 → t", "svc-07 → u", "svc-08", "\xff\xff"}
	differ := 0
	for _, a := range words {
		for _, b := range words {
			if ha, hb := head(a), head(b); ha != hb {
				differ++
				if (ha < hb) != (a < b) {
					t.Errorf("%q < %q is %v, but their heads say %v", a, b, a < b, ha < hb)
				}
			}
		}
	}
	if differ < len(words)*(len(words)-1)-8 {
		t.Errorf("only %d ordered pairs with different heads", differ)
	}
}

// TestSortRuns: a slice of a few ascending runs (merged) or many (sorted)
// comes out as slices.Sort leaves it, ties included, for run counts on
// either side of the limit.
func TestSortRuns(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for round := 0; round < 500; round++ {
		var a []int
		for range rng.IntN(30) {
			run := make([]int, rng.IntN(50))
			for i := range run {
				run[i] = rng.IntN(100)
			}
			slices.Sort(run)
			a = append(a, run...)
		}
		want := slices.Sorted(slices.Values(a))
		sortRuns(a, func(x, y int) int { return x - y })
		if !slices.Equal(a, want) {
			t.Fatalf("round %d: %v, want %v", round, a, want)
		}
	}
}

// Merged partials' lists are moved as they are, trimmed: a partial of a
// few spans holds no chunk of 4096 values (BenchmarkMergeResults/tiny
// held 1.8 kB a span before).
func TestMergeTrims(t *testing.T) {
	var all *Partial
	for i := range 20 {
		ts := synth.Generate(synth.Config{Traces: 5, SpansPerTrace: 20, Services: 4, Topics: 2, Partitions: 2,
			BrokenShare: 0.2, LinkShare: 0.5, Seed: uint64(i + 1)})
		p, err := Collect(context.Background(), Slice(ts), Options{Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		if all == nil {
			all = p
		} else if err := all.Merge(p); err != nil {
			t.Fatal(err)
		}
	}
	a, b := all.a, all.a.b
	for i, r := range b.producers.runs[1:] {
		for _, c := range r.list.Chunks() {
			if cap(c) != len(c) {
				t.Fatalf("producers of merged partial %d: a chunk of %d with room for %d", i+1, len(c), cap(c))
			}
		}
	}
	for i, l := range a.merged {
		for _, c := range l.Chunks() {
			if cap(c) != len(c) {
				t.Fatalf("consumers of merged partial %d: a chunk of %d with room for %d", i, len(c), cap(c))
			}
		}
	}
	for i, lg := range b.logs {
		if cap(lg.list.cur) != lg.list.i {
			t.Fatalf("latency log %d: %d samples with room for %d", i, lg.list.i, cap(lg.list.cur))
		}
	}
	if len(b.producers.runs) < 2 || len(a.merged) == 0 || len(b.logs) == 0 {
		t.Fatalf("nothing merged to look at: %d producer runs, %d consumer lists, %d logs", len(b.producers.runs), len(a.merged), len(b.logs))
	}
}
