package analyze_test

import (
	"testing"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/trace"
)

func coverageOf(t *testing.T, cs []analyze.Coverage, svc string) analyze.Coverage {
	t.Helper()
	for _, c := range cs {
		if c.Service == svc {
			return c
		}
	}
	t.Fatalf("no coverage for %s in %+v", svc, cs)
	return analyze.Coverage{}
}

// TestCoverageFromLinks: where one service produces a topic, the share of
// the records its consumers link to that are in the data is its coverage;
// with too few records, or none, it cannot be told.
func TestCoverageFromLinks(t *testing.T) {
	var ts []trace.Trace
	for i := range 20 {
		pid := trace.TraceID{Low: uint64(100 + i)}
		if i < 6 { // the producer's trace was kept
			ts = append(ts, mk(pid, spec{id: 1, svc: "p", kind: trace.KindProducer, attrs: topic("orders")}))
		}
		cid := trace.TraceID{Low: uint64(200 + i)}
		ts = append(ts, mk(cid, spec{id: 2, svc: "c", kind: trace.KindConsumer, ms: 5, attrs: topic("orders"),
			links: []trace.Ref{{Type: trace.RefLink, TraceID: pid, SpanID: 1}}}))
	}
	cs := run(ts...).Coverage
	if p := coverageOf(t, cs, "p"); p.Estimate != 0.3 || p.Basis != "6 of 20 records consumers point at are in the data" {
		t.Errorf("p: %+v", p)
	}
	if c := coverageOf(t, cs, "c"); c.Estimate != -1 {
		t.Errorf("c: %+v, want it cannot be told", c)
	}
	if p := coverageOf(t, run(ts[:10]...).Coverage, "p"); p.Estimate != -1 {
		t.Errorf("p from 5 records: %+v, want it cannot be told", p)
	}
}

// TestCoverageFromSamplerTags: Jaeger clients' sampler tags on root spans
// give the ratio; tags that disagree, or a sampler of no fixed ratio, say
// it cannot be told.
func TestCoverageFromSamplerTags(t *testing.T) {
	ts := synth.Generate(synth.Config{Traces: 200, SampleRatio: 0.3, SamplerTags: true, Seed: 2})
	g := graph.Build(ts)
	cs := analyze.EstimateCoverage(g)
	tagged := 0
	for _, n := range g.Nodes {
		if len(n.Samplers) > 0 {
			tagged++
			if c := coverageOf(t, cs, n.Name); c.Estimate != 0.3 {
				t.Errorf("%s: %+v", n.Name, c)
			}
		}
	}
	if tagged == 0 {
		t.Fatal("no tagged service")
	}
	for samplers, want := range map[string]float64{"const 1": 1, "ratelimiting 2": -1, "probabilistic 2": -1} {
		g := &graph.Graph{Nodes: []*graph.Node{{Key: "service:s", Kind: graph.KindService, Name: "s", Samplers: []string{samplers}}}}
		if c := analyze.EstimateCoverage(g)[0]; c.Estimate != want {
			t.Errorf("%q: %+v, want %v", samplers, c, want)
		}
	}
}
