package analyze_test

import (
	"testing"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/trace"
)

// TestCheckThreeWays: a flow's consume hop judged over consumers that
// continue their producer (a link into the data), lose it (no reference),
// and cannot be told (a link out of the data, whatever the link's flags
// say): continuity counts the verifiable only, the others are counted and
// said apart, and the flow has too few verifiable traces to judge.
func TestCheckThreeWays(t *testing.T) {
	var ts []trace.Trace
	link := func(tid trace.TraceID, s trace.Sampled) []trace.Ref {
		return []trace.Ref{{Type: trace.RefLink, TraceID: tid, SpanID: 1, Sampled: s}}
	}
	for i, links := range [][]trace.Ref{
		link(trace.TraceID{Low: 1}, trace.SampledUnknown), // into the data: continues
		nil, // lost
		link(trace.TraceID{Low: 99}, trace.SampledNo),      // out: not sampled
		link(trace.TraceID{Low: 98}, trace.SampledUnknown), // out
	} {
		ts = append(ts, mk(trace.TraceID{Low: uint64(10 + i)}, spec{id: 2, svc: "c", kind: trace.KindConsumer, ms: 5, attrs: topic("orders"), links: links}))
	}
	ts = append(ts, mk(trace.TraceID{Low: 1}, spec{id: 1, svc: "p", kind: trace.KindProducer, attrs: topic("orders")}))
	sp := &analyze.Spec{Flows: []analyze.Flow{{Name: "f", Entry: "p", MinContinuity: 0.9, MinTraces: 3,
		Path: []analyze.Step{{Topic: "orders"}, {Service: "c", Relation: analyze.RelEither}}}}}
	f := analyze.Check(ts, sp)[0]
	h := f.Hops[1]
	if h.Seen != 4 || h.Continuous != 1 || h.Unverifiable != 2 || h.Continuity != 0.5 {
		t.Fatalf("hop %+v", h)
	}
	if h.Why != "linked trace not sampled (its trace flags say so)" {
		t.Errorf("why %q", h.Why)
	}
	if f.Reaching != 2 || f.Covering != 1 || f.Unverifiable != 2 || f.Verdict != analyze.Inconclusive {
		t.Errorf("flow %+v", f)
	}
}
