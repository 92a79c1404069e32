package analyze

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"gonum.org/v1/gonum/graph/flow"
	"gonum.org/v1/gonum/graph/simple"

	"github.com/ktrace-dev/ktrace/graph"
)

// SPOF kinds. The values are part of the JSON output and of --fail-on.
const (
	SPOFArticulation   = "articulation"
	SPOFBridge         = "bridge"
	SPOFDominator      = "dominator"
	SPOFSingleInstance = "single-instance"
	SPOFSingleConsumer = "single-consumer"
	SPOFSinglePart     = "single-partition"
)

// SPOFKinds lists every kind, in display order.
var SPOFKinds = []string{SPOFArticulation, SPOFBridge, SPOFDominator, SPOFSingleInstance, SPOFSingleConsumer, SPOFSinglePart}

// SPOFFinding is one single point of failure.
type SPOFFinding struct {
	Kind string
	// Node is the node key (for a bridge, the edge "a -> b").
	Node   string
	Reason string
	// Blast is what is cut off if it fails: node keys no longer reachable
	// from any entry point, sorted. Entries are entry points that lose a
	// sink they reached.
	Blast   []string
	Entries []string
	// Minor marks a finding that is true but no risk worth a row of its
	// own: a single instance of a service that is neither an entry point
	// nor a cut vertex or dominator (its failure cuts off only itself). It
	// stays in -o json; ByNode and --fail-on leave it out.
	Minor bool
}

// SPOFNode is a node with every risk found at it, for people: one row per
// node, ranked by blast radius.
type SPOFNode struct {
	Node    string
	Kinds   []string
	Reasons []string
	// Blast and Entries are those of its worst finding.
	Blast   []string
	Entries []string
}

// ByNode groups the findings that are not minor by node, largest blast
// radius first (then most kinds, then by key). A bridge is told at the
// node it leaves.
func (r SPOFReport) ByNode() []SPOFNode {
	var out []SPOFNode
	at := map[string]int{}
	for _, f := range r.Findings {
		if f.Minor {
			continue
		}
		node, reason := f.Node, f.Reason
		if a, b, ok := strings.Cut(f.Node, " -> "); ok {
			node, reason = a, "its link to "+b+" is "+f.Reason
		}
		i, ok := at[node]
		if !ok {
			i = len(out)
			at[node] = i
			out = append(out, SPOFNode{Node: node})
		}
		n := &out[i]
		n.Kinds = appendUnique(n.Kinds, f.Kind)
		n.Reasons = append(n.Reasons, reason)
		if len(f.Blast) > len(n.Blast) || n.Blast == nil {
			n.Blast, n.Entries = f.Blast, f.Entries
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if len(a.Blast) != len(b.Blast) {
			return len(a.Blast) > len(b.Blast)
		}
		if len(a.Kinds) != len(b.Kinds) {
			return len(a.Kinds) > len(b.Kinds)
		}
		return a.Node < b.Node
	})
	return out
}

// SPOFReport is the result of SPOF.
type SPOFReport struct {
	Nodes    int
	Entries  []string
	Findings []SPOFFinding
}

// SPOF finds single points of failure in g. entries overrides the entry
// points (node keys or names); by default they are the nodes nothing
// instrumented leads to, and services called by an unknown caller.
func SPOF(g *graph.Graph, entries []string) (SPOFReport, error) {
	sg, err := newSPOFGraph(g, entries)
	if err != nil || len(sg.nodes) < 2 {
		return sg.report(), err
	}
	sg.cuts()
	sg.dominators()
	sg.capacity()
	sg.markMinor()
	rep := sg.report()
	sort.SliceStable(rep.Findings, func(i, j int) bool {
		a, b := rep.Findings[i], rep.Findings[j]
		if len(a.Blast) != len(b.Blast) {
			return len(a.Blast) > len(b.Blast)
		}
		if a.Kind != b.Kind {
			return kindIndex(a.Kind) < kindIndex(b.Kind)
		}
		return a.Node < b.Node
	})
	return rep, nil
}

// spofGraph is the graph SPOF works on: the nodes but unknown callers
// (one per service, they would make every entry look like a cut vertex),
// their edges as adjacency lists, the entry points, and what each entry
// reaches with nothing failed.
type spofGraph struct {
	g        *graph.Graph
	nodes    []*graph.Node
	idx      map[string]int
	out, in  [][]int
	edge     map[[2]int]bool
	roots    []int
	reached  [][]bool // by root
	findings []SPOFFinding
}

var noEdge = [2]int{-1, -1}

// newSPOFGraph builds the working graph (only its nodes when it has fewer
// than two: there is nothing to analyse).
func newSPOFGraph(g *graph.Graph, entries []string) (*spofGraph, error) {
	sg := &spofGraph{g: g, idx: map[string]int{}, edge: map[[2]int]bool{}}
	for _, n := range g.Nodes {
		if n.Kind != graph.KindUnknownCaller {
			sg.idx[n.Key] = len(sg.nodes)
			sg.nodes = append(sg.nodes, n)
		}
	}
	if len(sg.nodes) < 2 {
		return sg, nil
	}
	sg.out, sg.in = make([][]int, len(sg.nodes)), make([][]int, len(sg.nodes))
	calledFromOutside := map[int]bool{}
	for _, e := range g.Edges {
		a, okA := sg.idx[e.From.Key]
		b, okB := sg.idx[e.To.Key]
		if !okA && okB {
			calledFromOutside[b] = true
		}
		if !okA || !okB || sg.edge[[2]int{a, b}] {
			continue
		}
		sg.edge[[2]int{a, b}] = true
		sg.out[a] = append(sg.out[a], b)
		sg.in[b] = append(sg.in[b], a)
	}
	if len(entries) > 0 {
		for _, e := range entries {
			i, ok := sg.idx[e]
			if !ok {
				i, ok = sg.idx["service:"+e]
			}
			if !ok {
				i, ok = sg.idx["topic:"+e]
			}
			if !ok {
				return sg, fmt.Errorf("--entry %q is not a node of the graph", e)
			}
			sg.roots = append(sg.roots, i)
		}
	} else {
		for i := range sg.nodes {
			if len(sg.in[i]) == 0 || calledFromOutside[i] {
				sg.roots = append(sg.roots, i)
			}
		}
	}
	for _, r := range sg.roots {
		sg.reached = append(sg.reached, sg.reachFrom(r, -1, noEdge))
	}
	return sg, nil
}

// report is what was found.
func (sg *spofGraph) report() SPOFReport {
	rep := SPOFReport{Nodes: len(sg.nodes), Findings: sg.findings}
	for _, r := range sg.roots {
		rep.Entries = append(rep.Entries, sg.nodes[r].Key)
	}
	sort.Strings(rep.Entries)
	return rep
}

// reachFrom is what root reaches with skipNode or skipEdge failed.
func (sg *spofGraph) reachFrom(root, skipNode int, skipEdge [2]int) []bool {
	vis := make([]bool, len(sg.nodes))
	if root == skipNode {
		return vis
	}
	vis[root] = true
	stack := []int{root}
	for len(stack) > 0 {
		u := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, v := range sg.out[u] {
			if v == skipNode || vis[v] || (skipEdge == [2]int{u, v}) {
				continue
			}
			vis[v] = true
			stack = append(stack, v)
		}
	}
	return vis
}

// blast is what some entry no longer reaches when a node or an edge
// fails, and which entries lose something.
func (sg *spofGraph) blast(skipNode int, skipEdge [2]int) (cut, lost []string) {
	gone := map[int]bool{}
	for ri, r := range sg.roots {
		after := sg.reachFrom(r, skipNode, skipEdge)
		any := false
		for i := range sg.nodes {
			if sg.reached[ri][i] && !after[i] {
				gone[i], any = true, true
			}
		}
		if any {
			lost = append(lost, sg.nodes[r].Key)
		}
	}
	for i := range gone {
		cut = append(cut, sg.nodes[i].Key)
	}
	sort.Strings(cut)
	sort.Strings(lost)
	return cut, lost
}

// addAs records a finding at node whose failure is that of failing.
func (sg *spofGraph) addAs(kind string, node, failing int, reason string) {
	cut, lost := sg.blast(failing, noEdge)
	sg.findings = append(sg.findings, SPOFFinding{Kind: kind, Node: sg.nodes[node].Key, Reason: reason, Blast: cut, Entries: lost})
}

func (sg *spofGraph) add(kind string, node int, reason string) { sg.addAs(kind, node, node, reason) }

// cuts finds the articulation points and bridges of the undirected graph.
func (sg *spofGraph) cuts() {
	undirected := make([][]int, len(sg.nodes))
	for a := range sg.out {
		for _, b := range sg.out[a] {
			undirected[a] = appendInt(undirected[a], b)
			undirected[b] = appendInt(undirected[b], a)
		}
	}
	cuts, bridges := ArticulationPoints(undirected)
	for _, v := range cuts {
		sg.add(SPOFArticulation, v, "removing it splits the graph")
	}
	for _, br := range bridges {
		a, b := br[0], br[1]
		if !sg.edge[[2]int{a, b}] {
			a, b = b, a
		}
		cut, lost := sg.blast(-1, [2]int{a, b})
		sg.findings = append(sg.findings, SPOFFinding{Kind: SPOFBridge, Node: sg.nodes[a].Key + " -> " + sg.nodes[b].Key,
			Reason: "the only link between two parts of the graph", Blast: cut, Entries: lost})
	}
}

// dominators finds, from each entry, the nodes every path to a sink must
// cross (gonum's dominator tree).
func (sg *spofGraph) dominators() {
	dg := simple.NewDirectedGraph()
	for i := range sg.nodes {
		dg.AddNode(simple.Node(i))
	}
	for a := range sg.out {
		for _, b := range sg.out[a] {
			if a != b {
				dg.SetEdge(simple.Edge{F: simple.Node(a), T: simple.Node(b)})
			}
		}
	}
	dominates := map[int][]string{}
	for ri, r := range sg.roots {
		tree := flow.Dominators(simple.Node(r), dg)
		for sink := range sg.nodes {
			if !sg.reached[ri][sink] || len(sg.out[sink]) > 0 || sink == r {
				continue
			}
			for d := tree.DominatorOf(int64(sink)); d != nil && d.ID() != int64(r); d = tree.DominatorOf(d.ID()) {
				dominates[int(d.ID())] = appendUnique(dominates[int(d.ID())], sg.nodes[r].Name+" → "+sg.nodes[sink].Name)
			}
		}
	}
	for v, paths := range dominates {
		sort.Strings(paths)
		sg.add(SPOFDominator, v, "every path "+strings.Join(paths, ", ")+" crosses it")
	}
}

// capacity finds services seen with one instance, topics read by one
// consumer group with one instance, and topics of one partition.
func (sg *spofGraph) capacity() {
	groups := map[string]map[string]bool{}
	consumers := map[string]map[string]bool{}
	for _, e := range sg.g.Edges {
		if e.Kind == graph.EdgeConsume {
			if groups[e.From.Key] == nil {
				groups[e.From.Key], consumers[e.From.Key] = map[string]bool{}, map[string]bool{}
			}
			groups[e.From.Key][e.Group] = true
			consumers[e.From.Key][e.To.Key] = true
		}
	}
	for i, n := range sg.nodes {
		switch n.Kind {
		case graph.KindService:
			if len(n.Instances) == 1 {
				sg.add(SPOFSingleInstance, i, "one instance seen: "+n.Instances[0])
			}
		case graph.KindTopic:
			if len(groups[n.Key]) == 1 && len(consumers[n.Key]) == 1 {
				var svc, grp string
				for k := range consumers[n.Key] {
					svc = k
				}
				for k := range groups[n.Key] {
					grp = k
				}
				if c := sg.g.Node(svc); c != nil && len(c.Instances) == 1 {
					// Its consumer failing is what cuts the topic's records off.
					sg.addAs(SPOFSingleConsumer, i, sg.idx[svc], fmt.Sprintf("read by one consumer group (%s) with one instance (%s)", grp, c.Instances[0]))
				}
			}
			if len(n.Partitions) == 1 {
				sg.add(SPOFSinglePart, i, fmt.Sprintf("every record went to partition %d", n.Partitions[0]))
			}
		}
	}
}

// markMinor marks the single instances that matter little: a single
// instance matters where the service is an entry point, a cut vertex or a
// dominator, where its failure cuts off more than itself.
func (sg *spofGraph) markMinor() {
	structural := map[string]bool{}
	for _, r := range sg.roots {
		structural[sg.nodes[r].Key] = true
	}
	for _, f := range sg.findings {
		if f.Kind == SPOFArticulation || f.Kind == SPOFDominator {
			structural[f.Node] = true
		}
	}
	for i := range sg.findings {
		if f := &sg.findings[i]; f.Kind == SPOFSingleInstance && !structural[f.Node] {
			f.Minor = true
		}
	}
}

func kindIndex(k string) int {
	for i, x := range SPOFKinds {
		if x == k {
			return i
		}
	}
	return len(SPOFKinds)
}

func appendInt(list []int, v int) []int {
	for _, x := range list {
		if x == v {
			return list
		}
	}
	return append(list, v)
}

// ArticulationPoints returns the cut vertices and the bridges of an
// undirected graph given as adjacency lists (both directions present), in
// ascending order. It is Tarjan's lowpoint algorithm, iterative so deep
// graphs cannot overflow the stack.
func ArticulationPoints(adj [][]int) (cuts []int, bridges [][2]int) {
	n := len(adj)
	disc := make([]int, n)
	low := make([]int, n)
	parent := make([]int, n)
	for i := range disc {
		disc[i], parent[i] = -1, -1
	}
	isCut := make([]bool, n)
	timer := 0
	type frame struct{ v, next int }
	for s := 0; s < n; s++ {
		if disc[s] >= 0 {
			continue
		}
		disc[s], low[s] = timer, timer
		timer++
		children := 0
		stack := []frame{{s, 0}}
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			v := top.v
			if top.next < len(adj[v]) {
				w := adj[v][top.next]
				top.next++
				switch {
				case disc[w] < 0:
					parent[w] = v
					disc[w], low[w] = timer, timer
					timer++
					if v == s {
						children++
					}
					stack = append(stack, frame{w, 0})
				case w != parent[v]:
					low[v] = min(low[v], disc[w])
				}
				continue
			}
			stack = stack[:len(stack)-1]
			if p := parent[v]; p >= 0 {
				low[p] = min(low[p], low[v])
				if p != s && low[v] >= disc[p] {
					isCut[p] = true
				}
				if low[v] > disc[p] {
					a, b := min(p, v), max(p, v)
					bridges = append(bridges, [2]int{a, b})
				}
			}
		}
		if children > 1 {
			isCut[s] = true
		}
	}
	for v, c := range isCut {
		if c {
			cuts = append(cuts, v)
		}
	}
	sort.Slice(bridges, func(i, j int) bool {
		if bridges[i][0] != bridges[j][0] {
			return bridges[i][0] < bridges[j][0]
		}
		return bridges[i][1] < bridges[j][1]
	})
	return cuts, bridges
}

// appendUnique appends s to list unless it is there.
func appendUnique[S ~string](list []S, s S) []S {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
