package testenv

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/trace"
)

// Agree fails t unless g and rep are what the plain references make of
// ts: graph.Build, then analyze.Breaks with skew tolerance tol. what
// names the result in the message.
func Agree(t testing.TB, what string, g *graph.Graph, rep analyze.Report, ts []trace.Trace, tol time.Duration) {
	t.Helper()
	want := graph.Build(ts)
	if got, w := GraphSummary(g), GraphSummary(want); got != w {
		t.Fatalf("%s: the graph differs from graph.Build's:\n%s\nwant\n%s", what, got, w)
	}
	wantRep := analyze.Breaks(ts, want, analyze.Options{SkewTolerance: tol})
	if !reflect.DeepEqual(rep.Findings, wantRep.Findings) {
		t.Fatalf("%s: the report differs from analyze.Breaks':\n got %+v\nwant %+v", what, rep.Findings, wantRep.Findings)
	}
}

// GraphSummary is everything a graph says, in its order, one line per
// node, edge and stitch: two graphs are the same when their summaries are.
func GraphSummary(g *graph.Graph) string {
	var b strings.Builder
	fmt.Fprintf(&b, "traces %d spans %d\n", g.Traces, g.Spans)
	for _, n := range g.Nodes {
		fmt.Fprintf(&b, "node %s %d %d %v %v %v %v\n", n.Key, n.Spans, n.Errors, n.Instances, n.Operations, n.Partitions, n.Samplers)
	}
	for _, e := range g.Edges {
		fmt.Fprintf(&b, "edge %s %s %s %s %q %d %d %v %v %v %v\n", e.From.Key, e.To.Key, e.Kind, e.Relation, e.Group, e.Count, e.Errors, e.P50, e.P95, e.P99, e.ClientIDs)
	}
	for _, s := range g.Stitches {
		fmt.Fprintf(&b, "stitch %+v\n", s)
	}
	return b.String()
}
