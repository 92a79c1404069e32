package analyze

import (
	"fmt"
	"sort"
	"time"

	"github.com/ktrace-dev/ktrace/graph"
)

// Change kinds. The values are part of the JSON output.
const (
	ChangeNodeAdded        = "node-added"
	ChangeNodeRemoved      = "node-removed"
	ChangeEdgeAdded        = "edge-added"
	ChangeEdgeRemoved      = "edge-removed"
	ChangeRelation         = "relation-changed"
	ChangeContinuity       = "continuity-changed"
	ChangeLatencyRegressed = "latency-regressed"
)

// Change is one difference between two graphs.
type Change struct {
	Kind string
	// Subject is a node key, or an edge "from -> to (kind[, group])".
	Subject string
	Before  string
	After   string
	// Broke is set when the change means trace context is now lost.
	Broke bool
}

// DiffOptions tune Diff.
type DiffOptions struct {
	// LatencyThreshold is the relative p95 increase reported as a regression
	// (0.2 = 20%); MinLatencyDelta the absolute increase it also needs.
	LatencyThreshold float64
	MinLatencyDelta  time.Duration
	// ContinuityDelta is the smallest continuity change reported.
	ContinuityDelta float64
}

type edgeID struct{ from, to, kind, group string }

func (e edgeID) String() string {
	s := fmt.Sprintf("%s -> %s (%s", e.from, e.to, e.kind)
	if e.group != "" {
		s += ", " + e.group
	}
	return s + ")"
}

type edgeSummary struct {
	counts           map[graph.Relation]int
	main             graph.Relation
	p95              time.Duration
	continuous, seen int
}

func summarise(g *graph.Graph) (map[string]bool, map[edgeID]*edgeSummary) {
	nodes := map[string]bool{}
	for _, n := range g.Nodes {
		if n.Kind != graph.KindUnknownCaller {
			nodes[n.Key] = true
		}
	}
	edges := map[edgeID]*edgeSummary{}
	best := map[edgeID]int{}
	for _, e := range g.Edges {
		if e.From.Kind == graph.KindUnknownCaller {
			continue
		}
		id := edgeID{e.From.Key, e.To.Key, e.Kind.String(), e.Group}
		s := edges[id]
		if s == nil {
			s = &edgeSummary{counts: map[graph.Relation]int{}}
			edges[id] = s
		}
		s.counts[e.Relation] += e.Count
		if e.Count > best[id] {
			best[id], s.main, s.p95 = e.Count, e.Relation, e.P95
		}
		// Continuity as check counts it: origins, and consumers whose
		// producer is not in the data (sampled out?), are left out.
		if e.Relation != graph.RelSpan && !(e.Relation == graph.RelUnverified && e.Kind == graph.EdgeConsume) {
			s.seen += e.Count
			if e.Relation == graph.RelParent || e.Relation == graph.RelLink {
				s.continuous += e.Count
			}
		}
	}
	return nodes, edges
}

func continuity(s *edgeSummary) (float64, bool) {
	if s.seen == 0 {
		return 0, false
	}
	return float64(s.continuous) / float64(s.seen), true
}

// Diff compares graph a (before) with b (after): nodes and edges added or
// removed, edges whose relation changed (parent → stitched means a hop
// broke), continuity changes and p95 latency regressions. Changes are
// sorted by kind, then subject.
func Diff(a, b *graph.Graph, o DiffOptions) []Change {
	if o.LatencyThreshold == 0 {
		o.LatencyThreshold = 0.2
	}
	if o.MinLatencyDelta == 0 {
		o.MinLatencyDelta = time.Millisecond
	}
	if o.ContinuityDelta == 0 {
		o.ContinuityDelta = 0.01
	}
	na, ea := summarise(a)
	nb, eb := summarise(b)
	var out []Change
	for k := range nb {
		if !na[k] {
			out = append(out, Change{Kind: ChangeNodeAdded, Subject: k})
		}
	}
	for k := range na {
		if !nb[k] {
			out = append(out, Change{Kind: ChangeNodeRemoved, Subject: k})
		}
	}
	for id, sb := range eb {
		sa, ok := ea[id]
		if !ok {
			out = append(out, Change{Kind: ChangeEdgeAdded, Subject: id.String(), After: sb.main.String()})
			continue
		}
		if sa.main != sb.main {
			out = append(out, Change{Kind: ChangeRelation, Subject: id.String(), Before: sa.main.String(), After: sb.main.String(),
				Broke: sb.main == graph.RelStitched || (id.kind == "produce" && (sb.main == graph.RelSpan || sb.main == graph.RelUnverified) &&
					(sa.main == graph.RelParent || sa.main == graph.RelLink))})
		}
		ca, okA := continuity(sa)
		cb, okB := continuity(sb)
		if okA && okB && (cb-ca > o.ContinuityDelta || ca-cb > o.ContinuityDelta) {
			out = append(out, Change{Kind: ChangeContinuity, Subject: id.String(),
				Before: fmt.Sprintf("%.2f", ca), After: fmt.Sprintf("%.2f", cb), Broke: cb < ca})
		}
		if sa.p95 > 0 && sb.p95-sa.p95 >= o.MinLatencyDelta && float64(sb.p95) > float64(sa.p95)*(1+o.LatencyThreshold) {
			out = append(out, Change{Kind: ChangeLatencyRegressed, Subject: id.String(),
				Before: sa.p95.Round(time.Microsecond).String(), After: sb.p95.Round(time.Microsecond).String()})
		}
	}
	for id, sa := range ea {
		if _, ok := eb[id]; !ok {
			out = append(out, Change{Kind: ChangeEdgeRemoved, Subject: id.String(), Before: sa.main.String()})
		}
	}
	order := map[string]int{ChangeRelation: 0, ChangeContinuity: 1, ChangeLatencyRegressed: 2, ChangeEdgeAdded: 3,
		ChangeEdgeRemoved: 4, ChangeNodeAdded: 5, ChangeNodeRemoved: 6}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return order[out[i].Kind] < order[out[j].Kind]
		}
		return out[i].Subject < out[j].Subject
	})
	return out
}
