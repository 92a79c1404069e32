package testenv

import (
	"fmt"
	"strings"

	"github.com/ktrace-dev/ktrace/graph"
)

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
