package analyze

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/internal/straddr"
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

// TestHopCounts: hop counts that grow from the smallest table count every
// hop's stitches apart, by the addresses of its names: occurrences, distinct
// traces (a trace's stitches come together) and the smallest trace IDs as
// examples, as a finding counts them; a name at another's address with
// another length is another name.
func TestHopCounts(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	buf := "abcdefghijklmnopqrstuvwxyz0123"
	names := make([]string, 30)
	for i := range names {
		names[i] = buf[i:] // distinct addresses
	}
	names[29] = buf[28:29] // names[28]'s address, one byte
	type hk struct{ i, j, k int }
	h := newHopCounts(0)
	want := map[hk]*finding{}
	var stitches []graph.Stitch
	for tr := range 3000 {
		tid := trace.TraceID{High: uint64(rng.IntN(4)), Low: uint64(tr)}
		for range 1 + rng.IntN(3) {
			k := hk{rng.IntN(10), 10 + rng.IntN(10), 20 + rng.IntN(10)}
			stitches = append(stitches, graph.Stitch{Producer: graph.SpanRef{Service: names[k.i]}, Topic: names[k.j],
				Consumer: graph.SpanRef{TraceID: tid, Service: names[k.k]}})
			f := want[k]
			if f == nil {
				f = &finding{first: true}
				want[k] = f
			}
			f.count(tid)
		}
	}
	for i := range stitches {
		h.count(&stitches[i])
	}
	if len(h.hops) != len(want) || len(h.slots) < 2*len(want) {
		t.Fatalf("%d hops in %d slots, want %d hops in at least twice as many", len(h.hops), len(h.slots), len(want))
	}
	for k, f := range want {
		st := graph.Stitch{Producer: graph.SpanRef{Service: names[k.i]}, Topic: names[k.j], Consumer: graph.SpanRef{Service: names[k.k]}}
		c := h.find(hopKey{straddr.Of(names[k.i]), straddr.Of(names[k.j]), straddr.Of(names[k.k])}, &st)
		if c.occurrences != f.Occurrences || c.traces != f.Traces || !slices.Equal(c.ex, f.Examples) || c.last != f.last {
			t.Fatalf("hop %v: %d occurrences in %d traces, examples %v, want %d in %d, %v", k, c.occurrences, c.traces, c.ex, f.Occurrences, f.Traces, f.Examples)
		}
		if c.st.Producer.Service != names[k.i] || c.st.Topic != names[k.j] || c.st.Consumer.Service != names[k.k] {
			t.Fatalf("hop %v kept a stitch of another hop", k)
		}
	}
	if len(h.hops) != len(want) {
		t.Fatalf("finding the hops again made %d new ones", len(h.hops)-len(want))
	}
}

// TestHead: strings whose heads differ compare as their heads do (so the
// sort may skip comparing their texts).
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
