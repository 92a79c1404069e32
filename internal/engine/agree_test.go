package engine_test

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/internal/testenv"
	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/trace"
)

// plan is how a run of the engine is cut: workers per partial, the traces
// cut into parts, each collected into a partial of its own, the partials
// (through their bytes when encode is set) merged in the order order gives.
type plan struct {
	workers int
	parts   int
	encode  bool
	order   uint64 // seeds the merge order
}

func (p plan) String() string {
	return fmt.Sprintf("%d workers, %d parts, encoded %v, order %d", p.workers, p.parts, p.encode, p.order)
}

// runPlan runs the engine over ts as p says.
func runPlan(t testing.TB, ts []trace.Trace, o engine.Options, p plan) (*graph.Graph, analyze.Report) {
	t.Helper()
	o.Workers = p.workers
	ctx := context.Background()
	if p.parts <= 1 && !p.encode {
		g, rep, err := engine.Run(ctx, engine.Slice(ts), o)
		if err != nil {
			t.Fatal(err)
		}
		return g, rep
	}
	parts := max(1, p.parts)
	var ps []*engine.Partial
	for k := range parts {
		part, err := engine.Collect(ctx, engine.Slice(ts[k*len(ts)/parts:(k+1)*len(ts)/parts]), o)
		if err != nil {
			t.Fatal(err)
		}
		if p.encode {
			data, err := part.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			part = &engine.Partial{}
			if err := part.UnmarshalBinary(data); err != nil {
				t.Fatal(err)
			}
		}
		ps = append(ps, part)
	}
	rng := rand.New(rand.NewPCG(p.order, 1))
	rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
	// Merge pairwise as a tree, so merged partials are merged again.
	for len(ps) > 1 {
		var next []*engine.Partial
		for i := 0; i+1 < len(ps); i += 2 {
			if err := ps[i].Merge(ps[i+1]); err != nil {
				t.Fatal(err)
			}
			next = append(next, ps[i])
		}
		if len(ps)%2 == 1 {
			next = append(next, ps[len(ps)-1])
		}
		ps = next
	}
	g, rep := ps[0].Finish()
	return g, rep
}

// agree requires the engine, run as each plan says, to give what the
// references give over ts, with the traces in incomplete left out of the
// breaks.
func agree(t testing.TB, ts []trace.Trace, tol time.Duration, incomplete map[trace.TraceID]bool, plans ...plan) {
	t.Helper()
	want := graph.Build(ts)
	wantRep := analyze.Breaks(ts, want, analyze.Options{SkewTolerance: tol, Incomplete: incomplete})
	o := engine.Options{SkewTolerance: tol, Incomplete: func(tr *trace.Trace) bool { return incomplete[tr.ID] }}
	for _, p := range plans {
		g, rep := runPlan(t, ts, o, p)
		if got, w := testenv.GraphSummary(g), testenv.GraphSummary(want); got != w {
			t.Fatalf("%s: the graph differs from graph.Build's:\n%s", p, diff(got, w))
		}
		if !reflect.DeepEqual(rep, wantRep) {
			t.Fatalf("%s: the report differs from analyze.Breaks':\n got %+v\nwant %+v", p, rep, wantRep)
		}
	}
}

// diff shows the lines of got and want that differ.
func diff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	var b strings.Builder
	for _, l := range g {
		if !slices.Contains(w, l) {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	for _, l := range w {
		if !slices.Contains(g, l) {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	return b.String()
}

// shape is a synthetic set and what is done to it, chosen by fuzz bytes.
type shape struct {
	cfg         synth.Config
	unshare     bool
	drop        int // every drop-th span is removed (0: none): orphans
	passThrough bool
	skew        bool    // some spans start early
	relink      bool    // some spans lose their parent: a second root, or a produce span linked to another trace's span
	sample      float64 // after all that, each trace is kept with this probability (0: all)
	incomplete  int     // every incomplete-th trace is incomplete (0: none)
	tol         time.Duration
	plan        plan
}

func shapeOf(data []byte) shape {
	at := func(i int) int {
		if i < len(data) {
			return int(data[i])
		}
		return 0
	}
	flags := at(7)
	return shape{
		cfg: synth.Config{Traces: 1 + at(0)%120, SpansPerTrace: 2 + at(1)%24, Services: 2 + at(2)%10, Topics: 1 + at(3)%5,
			Partitions: 1 + at(12)%4, BrokenShare: float64(at(4)) / 255, LinkShare: float64(at(5)) / 255, FanOut: 1 + at(6)%3,
			Shuffle: flags&1 != 0, MessagingOnly: flags&2 != 0, Seed: uint64(at(10)), SampleRatio: []float64{0, 0.3, 0.6, 0.9}[at(15)%4],
			SamplerTags: at(15)&4 != 0},
		sample:  []float64{0, 0.5, 0.8, 0.95}[at(16)%4],
		unshare: flags&4 != 0, drop: []int{0, 7, 13, 29}[flags>>3&3], passThrough: flags&32 != 0, skew: flags&64 != 0, relink: flags&128 != 0,
		incomplete: []int{0, 0, 3, 11}[at(11)%4], tol: time.Duration(at(13)%3) * time.Millisecond,
		plan: plan{workers: 1 + at(8)%4, parts: 1 + at(9)%5, encode: at(9)&8 != 0, order: uint64(at(14))},
	}
}

// traces makes the shape's set.
func (s shape) traces() ([]trace.Trace, map[trace.TraceID]bool) {
	ts := synth.Generate(s.cfg)
	rng := rand.New(rand.NewPCG(s.cfg.Seed, 7))
	if s.drop > 0 {
		n := 0
		for i := range ts {
			ts[i].Spans = slices.DeleteFunc(ts[i].Spans, func(trace.Span) bool { n++; return n%s.drop == 0 && len(ts[i].Spans) > 1 })
		}
		ts = slices.DeleteFunc(ts, func(t trace.Trace) bool { return len(t.Spans) == 0 })
	}
	if s.skew {
		for i := range ts {
			for j := range ts[i].Spans {
				if rng.IntN(9) == 0 {
					ts[i].Spans[j].Start = ts[i].Spans[j].Start.Add(-time.Duration(rng.IntN(5)) * time.Millisecond)
				}
			}
		}
	}
	if s.relink {
		relink(ts)
	}
	if s.passThrough {
		ts = addPassThroughs(ts, rng)
	}
	if s.sample > 0 {
		ts = slices.DeleteFunc(ts, func(trace.Trace) bool { return rng.Float64() >= s.sample })
	}
	if s.unshare {
		synth.Unshare(ts)
	}
	incomplete := map[trace.TraceID]bool{}
	if s.incomplete > 0 {
		for i := range ts {
			if i%s.incomplete == 0 {
				incomplete[ts[i].ID] = true
			}
		}
	}
	return ts, incomplete
}

// relink takes the parent from a span in some traces: in every fifth, a
// span in the middle (a second root); in others, a produce span, given a
// link to a consumer span (it continues its input) or to a producer span
// (it does not) of the trace before.
func relink(ts []trace.Trace) {
	find := func(tr *trace.Trace, k trace.Kind) *trace.Span {
		for j := range tr.Spans {
			if s := &tr.Spans[j]; s.Kind == k && len(s.Refs) > 0 {
				return s
			}
		}
		return nil
	}
	for i := 1; i < len(ts); i++ {
		switch i % 5 {
		case 1:
			if n := len(ts[i].Spans); n > 2 {
				ts[i].Spans[n/2].Refs = nil
			}
		case 2, 3:
			p := find(&ts[i], trace.KindProducer)
			target := find(&ts[i-1], trace.KindConsumer)
			if i%5 == 3 {
				target = find(&ts[i-1], trace.KindProducer)
			}
			if p != nil && target != nil {
				p.Refs = []trace.Ref{{Type: trace.RefLink, TraceID: target.TraceID, SpanID: target.SpanID}}
			}
		}
	}
}

// addPassThroughs gives some consumer spans a record key, and for some of
// those a new trace: a root produce span of the same service, keyed alike,
// starting a little later (or earlier) on another topic, as a stateful
// join writes from its store.
func addPassThroughs(ts []trace.Trace, rng *rand.Rand) []trace.Trace {
	next := uint64(1) << 62
	var extra []trace.Trace
	for i := range ts {
		for j := range ts[i].Spans {
			s := &ts[i].Spans[j]
			if m, ok := s.Messaging(); !ok || !m.IsConsumer() || rng.IntN(3) > 0 {
				continue
			}
			key := "k" + strconv.Itoa(rng.IntN(4))
			s.Attributes = append(slices.Clip(s.Attributes), trace.Attribute{Key: "messaging.kafka.message.key", Value: key})
			if rng.IntN(2) == 0 {
				continue
			}
			next++
			id := trace.TraceID{High: next, Low: next}
			out := trace.Span{TraceID: id, SpanID: trace.SpanID(next), Kind: trace.KindProducer, Operation: "joined publish",
				Start: s.Start.Add(time.Duration(rng.IntN(5)-1) * time.Millisecond), Duration: time.Millisecond, Resource: s.Resource,
				Attributes: trace.Attributes{{Key: "messaging.system", Value: "kafka"}, {Key: "messaging.destination.name", Value: "joined"},
					{Key: "messaging.kafka.message.key", Value: key}}}
			extra = append(extra, trace.Trace{ID: id, Spans: []trace.Span{out}})
		}
	}
	return append(ts, extra...)
}

// seeds are the fuzz seeds: shapes that cover every choice at least once.
var seeds = [][]byte{
	{20, 10, 5, 3, 60, 0, 1, 0, 0, 0, 1},
	{100, 12, 8, 4, 50, 128, 2, 1 | 32, 2, 3 | 8, 2, 2, 2, 1, 5},
	{60, 20, 6, 2, 255, 60, 3, 2 | 4 | 8 | 64, 3, 4, 3, 3, 3, 2, 9},
	{119, 8, 11, 5, 30, 255, 1, 16 | 32 | 64 | 128, 1, 2 | 8, 4, 1, 0, 0, 1},
	{90, 12, 8, 4, 50, 0, 1, 8 | 128, 2, 3, 6, 2, 2, 1, 2},
	{110, 10, 6, 3, 120, 160, 2, 32 | 128, 2, 2 | 8, 7, 0, 0, 0, 3, 1 | 4, 1},
	{5, 3, 2, 1, 200, 100, 2, 1 | 2 | 4 | 24 | 32 | 64, 3, 4 | 8, 5, 3, 1, 2, 3},
}

// FuzzAgree: the engine — on any number of workers, over the traces cut
// into partials merged in any order, through their bytes or not — gives
// the graph graph.Build gives and the report analyze.Breaks gives, on
// synthetic sets the fuzz bytes shape: services, topics, fan-out, broken
// and linked shares, shuffled spans, dropped spans, skewed clocks,
// second roots, linked produce spans, pass-throughs, unshared strings,
// incomplete traces, traces sampled out.
//
// A long run: go test ./internal/engine -run '^$' -fuzz FuzzAgree -fuzztime 30m
func FuzzAgree(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := shapeOf(data)
		ts, incomplete := s.traces()
		agree(t, ts, s.tol, incomplete, plan{workers: 1}, s.plan)
	})
}

// TestFilesAgree: the engine agrees with the references on every trace file
// in the repository (fixtures and testdata), in every plan.
func TestFilesAgree(t *testing.T) {
	var paths []string
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		dir := filepath.Base(filepath.Dir(path))
		if !d.IsDir() && (dir == "fixtures" || dir == "testdata") && (strings.HasSuffix(path, ".json") || strings.HasSuffix(path, ".ktrace")) {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 6 {
		t.Fatalf("found only %v", paths)
	}
	for _, p := range paths {
		var set trace.Set
		if _, err := file.ReadFile(p, nil, &set, &trace.Resources{}); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		ts := set.Traces()
		t.Run(filepath.Base(p), func(t *testing.T) {
			half := map[trace.TraceID]bool{}
			for i := range ts {
				if i%4 == 1 {
					half[ts[i].ID] = true
				}
			}
			for _, inc := range []map[trace.TraceID]bool{nil, half} {
				agree(t, ts, 10*time.Millisecond, inc, plan{workers: 1}, plan{workers: 3}, plan{workers: 2, parts: 3, encode: true, order: 4},
					plan{workers: 1, parts: len(ts), encode: true, order: 9})
			}
		})
	}
}

// TestSeedsCover: the seeds make sets with every relation, both stitch
// kinds, every rule, and produce spans whose link does and does not carry
// on from their input, so the agreement is about something.
func TestSeedsCover(t *testing.T) {
	rels, kinds, rules, unverified := map[graph.Relation]bool{}, map[graph.StitchKind]bool{}, map[analyze.Rule]bool{}, map[analyze.Rule]bool{}
	samplers := false
	for _, s := range seeds {
		sh := shapeOf(s)
		ts, inc := sh.traces()
		g := graph.Build(ts)
		for _, e := range g.Edges {
			rels[e.Relation] = true
		}
		for _, n := range g.Nodes {
			samplers = samplers || len(n.Samplers) > 0
		}
		for _, st := range g.Stitches {
			kinds[st.Kind] = true
		}
		rep := analyze.Breaks(ts, g, analyze.Options{SkewTolerance: sh.tol, Incomplete: inc})
		for _, f := range rep.Findings {
			rules[f.Rule] = true
		}
		for _, f := range rep.Unverifiable {
			unverified[f.Rule] = true
		}
	}
	if len(rels) != 5 || len(kinds) != 2 {
		t.Errorf("relations %v, stitch kinds %v: want all", rels, kinds)
	}
	for _, r := range []analyze.Rule{analyze.RuleLostHop, analyze.RuleLostInside, analyze.RuleMidGraphRoot, analyze.RuleOrphan, analyze.RuleClockSkew, analyze.RuleMultipleRoots} {
		if !rules[r] {
			t.Errorf("no %s finding from the seeds (found %v)", r, rules)
		}
	}
	if !samplers {
		t.Error("no sampler tags in the seeds' sets")
	}
	if len(unverified) != 2 {
		t.Errorf("unverifiable from the seeds: %v, want both rules", unverified)
	}
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}

// TestRoundedSamplesAgree: edges busier than graph.ExactSamples, their
// samples split among partials that hold more than that (and send them
// rounded) and fewer (whole), merged, written and read again, and merged
// again, finish to the references' percentiles, rounded.
func TestRoundedSamplesAgree(t *testing.T) {
	ts := synth.Generate(synth.Config{Traces: 5000, SpansPerTrace: 8, Services: 2, Topics: 1, BrokenShare: 0.2, LinkShare: 0.3, Seed: 21})
	want := graph.Build(ts)
	busy := 0
	for _, e := range want.Edges {
		if e.Count > graph.ExactSamples {
			busy++
		}
	}
	if busy == 0 {
		t.Fatal("no edge has more samples than are kept whole: the test shows nothing")
	}
	ctx := context.Background()
	trip := func(p *engine.Partial) *engine.Partial {
		data, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		back := &engine.Partial{}
		if err := back.UnmarshalBinary(data); err != nil {
			t.Fatal(err)
		}
		return back
	}
	collect := func(ts []trace.Trace) *engine.Partial {
		p, err := engine.Collect(ctx, engine.Slice(ts), engine.Options{Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		return trip(p)
	}
	// Cuts at 80% and 95%: the first partial sends its busy edges
	// rounded, the others whole.
	a, b, c := collect(ts[:4000]), collect(ts[4000:4750]), collect(ts[4750:])
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	a = trip(a) // rounded and whole samples of one edge, written together
	if err := a.Merge(c); err != nil {
		t.Fatal(err)
	}
	g, rep := a.Finish()
	if got, w := testenv.GraphSummary(g), testenv.GraphSummary(want); got != w {
		t.Fatalf("the graph differs from graph.Build's:\n%s", diff(got, w))
	}
	if wantRep := analyze.Breaks(ts, want, analyze.Options{}); !reflect.DeepEqual(rep, wantRep) {
		t.Fatalf("the report differs from analyze.Breaks':\n got %+v\nwant %+v", rep, wantRep)
	}
}
