package analyze

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ktrace-dev/ktrace/graph"
)

// Coverage is what the data says of the share of a service's traces that
// it holds: where sampling kept some and dropped the rest.
type Coverage struct {
	Service string
	// Estimate is the share, 0 to 1, or -1 when it cannot be told.
	Estimate float64
	// Basis says how the estimate was found, or why there is none.
	Basis string
}

// minEvidence is how many records must point at a service's spans before
// their share in the data is taken as its coverage.
const minEvidence = 10

// EstimateCoverage estimates, for every instrumented service of g, the
// share of its traces the data holds, from what the data says:
//   - its root spans' sampler tags (Jaeger clients tag them
//     sampler.type and sampler.param): one "probabilistic P" (or
//     "ratio P") gives P, one "const 1" gives 1;
//   - else, where it is the only service producing to a topic, the share
//     of that topic's consumers pointing at a producer (through a link,
//     or a record that was stitched) whose span is in the data: consume
//     edges from the topic through a link or stitched, over those and the
//     unverified ones, when at least ten records point so;
//   - else it cannot be told (Estimate -1, and Basis says so).
//
// Head sampling keeps or drops whole traces, so a service's coverage is
// that of the traces its spans are in: under parent-based sampling, the
// coverage of the root spans upstream of it.
func EstimateCoverage(g *graph.Graph) []Coverage {
	producers := map[string][]string{} // topic → producing services
	for _, e := range g.Edges {
		if e.Kind == graph.EdgeProduce && !slices.Contains(producers[e.To.Name], e.From.Name) {
			producers[e.To.Name] = append(producers[e.To.Name], e.From.Name)
		}
	}
	present, pointed := map[string]int{}, map[string]int{}
	for _, e := range g.Edges {
		if e.Kind != graph.EdgeConsume || len(producers[e.From.Name]) != 1 {
			continue
		}
		p := producers[e.From.Name][0]
		switch e.Relation {
		case graph.RelLink, graph.RelStitched:
			present[p] += e.Count
			pointed[p] += e.Count
		case graph.RelUnverified:
			pointed[p] += e.Count
		}
	}
	var out []Coverage
	for _, n := range g.Nodes {
		if n.Kind != graph.KindService {
			continue
		}
		c := Coverage{Service: n.Name, Estimate: -1, Basis: "cannot be told: no sampler tags, and too few records point at its spans"}
		if p, ok := samplerShare(n.Samplers); ok {
			c.Estimate, c.Basis = p, fmt.Sprintf("sampler tags on its root spans: %s", n.Samplers[0])
		} else if len(n.Samplers) > 0 {
			c.Basis = "cannot be told: its root spans' sampler tags say " + strings.Join(n.Samplers, "; ")
		} else if pointed[n.Name] >= minEvidence {
			c.Estimate = float64(present[n.Name]) / float64(pointed[n.Name])
			c.Basis = fmt.Sprintf("%d of %d records consumers point at are in the data", present[n.Name], pointed[n.Name])
		}
		out = append(out, c)
	}
	return out
}

// samplerShare reads the share one sampler keeps from its tags.
func samplerShare(samplers []string) (float64, bool) {
	if len(samplers) != 1 {
		return 0, false
	}
	typ, param, _ := strings.Cut(samplers[0], " ")
	p, err := strconv.ParseFloat(param, 64)
	if err != nil || p < 0 || p > 1 {
		return 0, false
	}
	switch typ {
	case "probabilistic", "ratio", "traceidratio":
		return p, true
	case "const":
		return min(p, 1), p == 0 || p == 1
	}
	return 0, false
}
