package engine_test

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/trace"
)

// counts sums edges (count, errors, latency samples) and findings'
// occurrences by what names them, as metrics would.
type counts map[string]int

func (c counts) add(edges []engine.EdgeCount, rep analyze.Report, _ ...*engine.Partial) {
	for _, e := range edges {
		k := fmt.Sprintf("%s -> %s %s %s %s", e.From, e.To, e.Kind, e.Relation, e.Group)
		c[k+" count"] += e.Count
		c[k+" errors"] += e.Errors
		for _, ns := range e.Latencies {
			c[fmt.Sprintf("%s latency %d", k, ns)]++
		}
	}
	for _, f := range rep.Findings {
		c[fmt.Sprintf("finding %s %s", f.Rule, f.Where)] += f.Occurrences
	}
}

// fold counts unverified consume edges as span ones, without the
// unverified hops' findings.
func (c counts) fold() counts {
	out := counts{}
	for k, n := range c {
		if strings.HasPrefix(k, "finding "+string(analyze.RuleUnverifiedHop)) {
			continue
		}
		out[strings.Replace(k, " consume unverified ", " consume span ", 1)] += n
	}
	return out
}

func (c counts) String() string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(c)) {
		if c[k] != 0 {
			fmt.Fprintf(&b, "%s: %d\n", k, c[k])
		}
	}
	return b.String()
}

// pairingCounts cuts ts into parts as members' segments are, and adds up
// what each part's own traces settle and what Pair settles of each key's
// parts (through their bytes, as the pairs topic carries them).
func pairingCounts(t *testing.T, ts []trace.Trace, o engine.Options, segments, keys int, facts *engine.Partial) counts {
	t.Helper()
	got := counts{}
	byKey := make([][]*engine.Partial, keys)
	for k := range segments {
		p, err := engine.Collect(context.Background(), engine.Slice(ts[k*len(ts)/segments:(k+1)*len(ts)/segments]), o)
		if err != nil {
			t.Fatal(err)
		}
		local, parts, err := p.Pairing(keys, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := local.Merge(facts.Facts()); err != nil {
			t.Fatal(err)
		}
		got.add(local.Settle())
		for i, part := range parts {
			if part.Data == nil {
				continue
			}
			if part.From > part.To {
				t.Fatalf("a part's spans start from %d to %d", part.From, part.To)
			}
			back := &engine.Partial{}
			if err := back.UnmarshalBinary(part.Data); err != nil {
				t.Fatal(err)
			}
			byKey[i] = append(byKey[i], back)
		}
	}
	for _, judged := range byKey {
		if len(judged) == 0 {
			continue
		}
		edges, rep, _, err := engine.Pair(judged, []*engine.Partial{facts.Facts()})
		if err != nil {
			t.Fatal(err)
		}
		got.add(edges, rep)
	}
	return got
}

// TestPairingAddsUp: what the segments of a set settle on their own and
// what Pair settles of each key's parts add up to what the whole set
// settles — every edge, with its errors and latency samples, and every
// break — when each knows the whole set's facts (a member learns them as
// it goes), on the fuzz seeds' shapes.
func TestPairingAddsUp(t *testing.T) {
	for _, s := range seeds {
		addsUp(t, shapeOf(s))
	}
}

// FuzzPairing is TestPairingAddsUp on any shape.
//
// go test ./internal/engine -run '^$' -fuzz FuzzPairing -fuzztime 5m
func FuzzPairing(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { addsUp(t, shapeOf(data)) })
}

func addsUp(t *testing.T, s shape) {
	t.Helper()
	ts, incomplete := s.traces()
	o := engine.Options{SkewTolerance: s.tol, Incomplete: func(tr *trace.Trace) bool { return incomplete[tr.ID] }}
	whole, err := engine.Collect(context.Background(), engine.Slice(ts), o)
	if err != nil {
		t.Fatal(err)
	}
	want := counts{}
	edges, rep, facts := whole.Settle()
	want.add(edges, rep)
	for _, segments := range []int{1, 3, 7} {
		got := pairingCounts(t, ts, o, segments, 5, facts)
		w := want
		if s.drop > 0 {
			// A consumer's link to a span that is not a producer of its
			// partition: the whole set knows the span's trace is there
			// (a span relation), its key's parts may not (unverified).
			got, w = got.fold(), want.fold()
		}
		if g, w := got.String(), w.String(); g != w {
			t.Fatalf("%d segments: what the segments and the pairing count differs from the whole's:\n%s", segments, diff(g, w))
		}
	}
}

// BenchmarkPairing: what a member does with a segment's partial before it
// publishes it, on 20,000 spans: its pairing parts over six keys, in the
// bytes the pairs topic carries. alloc-B/span is the garbage it leaves
// for the collector.
func BenchmarkPairing(b *testing.B) {
	ts := synth.Generate(synth.Config{Traces: 1000, SpansPerTrace: 20, Services: 8, Topics: 4, Partitions: 6,
		BrokenShare: 0.1, LinkShare: 0.3, Seed: 7})
	var alloc uint64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		p, err := engine.Collect(context.Background(), engine.Slice(ts), engine.Options{Workers: 1})
		if err != nil {
			b.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		if _, _, err := p.Pairing(6, nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		runtime.ReadMemStats(&after)
		alloc += after.TotalAlloc - before.TotalAlloc
	}
	b.ReportMetric(float64(alloc)/float64(b.N*len(ts)*20), "alloc-B/span")
}
