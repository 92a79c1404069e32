package analyze

import (
	"fmt"
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
	// The working graph leaves out unknown callers: they are one node per
	// service and would make every entry look like a cut vertex.
	var nodes []*graph.Node
	for _, n := range g.Nodes {
		if n.Kind != graph.KindUnknownCaller {
			nodes = append(nodes, n)
		}
	}
	rep := SPOFReport{Nodes: len(nodes)}
	if len(nodes) < 2 {
		return rep, nil
	}
	idx := map[string]int{}
	for i, n := range nodes {
		idx[n.Key] = i
	}
	out := make([][]int, len(nodes))
	in := make([][]int, len(nodes))
	calledFromOutside := map[int]bool{}
	seen := map[[2]int]bool{}
	for _, e := range g.Edges {
		a, okA := idx[e.From.Key]
		b, okB := idx[e.To.Key]
		if !okA && okB {
			calledFromOutside[b] = true
		}
		if !okA || !okB || seen[[2]int{a, b}] {
			continue
		}
		seen[[2]int{a, b}] = true
		out[a] = append(out[a], b)
		in[b] = append(in[b], a)
	}
	var roots []int
	if len(entries) > 0 {
		for _, e := range entries {
			i, ok := idx[e]
			if !ok {
				i, ok = idx["service:"+e]
			}
			if !ok {
				i, ok = idx["topic:"+e]
			}
			if !ok {
				return rep, fmt.Errorf("--entry %q is not a node of the graph", e)
			}
			roots = append(roots, i)
		}
	} else {
		for i := range nodes {
			if len(in[i]) == 0 || calledFromOutside[i] {
				roots = append(roots, i)
			}
		}
	}
	for _, r := range roots {
		rep.Entries = append(rep.Entries, nodes[r].Key)
	}
	sort.Strings(rep.Entries)

	reachFrom := func(root, skipNode int, skipEdge [2]int) []bool {
		vis := make([]bool, len(nodes))
		if root == skipNode {
			return vis
		}
		vis[root] = true
		stack := []int{root}
		for len(stack) > 0 {
			u := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, v := range out[u] {
				if v == skipNode || vis[v] || (skipEdge == [2]int{u, v}) {
					continue
				}
				vis[v] = true
				stack = append(stack, v)
			}
		}
		return vis
	}
	none := [2]int{-1, -1}
	beforeFrom := make([][]bool, len(roots))
	for i, r := range roots {
		beforeFrom[i] = reachFrom(r, -1, none)
	}
	// blast is what some entry no longer reaches when a node or an edge
	// fails, and which entries lose something.
	blast := func(skipNode int, skipEdge [2]int) ([]string, []string) {
		cut := map[int]bool{}
		var lost []string
		for ri, r := range roots {
			after := reachFrom(r, skipNode, skipEdge)
			any := false
			for i := range nodes {
				if beforeFrom[ri][i] && !after[i] {
					cut[i], any = true, true
				}
			}
			if any {
				lost = append(lost, nodes[r].Key)
			}
		}
		var keys []string
		for i := range cut {
			keys = append(keys, nodes[i].Key)
		}
		sort.Strings(keys)
		sort.Strings(lost)
		return keys, lost
	}
	// add records a finding at node whose failure is that of failing.
	addAs := func(kind string, node, failing int, reason string) {
		cut, lost := blast(failing, none)
		rep.Findings = append(rep.Findings, SPOFFinding{Kind: kind, Node: nodes[node].Key, Reason: reason, Blast: cut, Entries: lost})
	}
	add := func(kind string, node int, reason string) { addAs(kind, node, node, reason) }

	// Articulation points and bridges of the undirected graph.
	undirected := make([][]int, len(nodes))
	for a := range out {
		for _, b := range out[a] {
			undirected[a] = appendInt(undirected[a], b)
			undirected[b] = appendInt(undirected[b], a)
		}
	}
	cuts, bridges := ArticulationPoints(undirected)
	for _, v := range cuts {
		add(SPOFArticulation, v, "removing it splits the graph")
	}
	for _, br := range bridges {
		a, b := br[0], br[1]
		if !seen[[2]int{a, b}] {
			a, b = b, a
		}
		cut, lost := blast(-1, [2]int{a, b})
		rep.Findings = append(rep.Findings, SPOFFinding{Kind: SPOFBridge, Node: nodes[a].Key + " -> " + nodes[b].Key,
			Reason: "the only link between two parts of the graph", Blast: cut, Entries: lost})
	}

	// Dominators: from each entry, nodes every path to a sink must cross.
	dg := simple.NewDirectedGraph()
	for i := range nodes {
		dg.AddNode(simple.Node(i))
	}
	for a := range out {
		for _, b := range out[a] {
			if a != b {
				dg.SetEdge(simple.Edge{F: simple.Node(a), T: simple.Node(b)})
			}
		}
	}
	dominates := map[int][]string{}
	for _, r := range roots {
		tree := flow.Dominators(simple.Node(r), dg)
		reachable := reachFrom(r, -1, none)
		for sink := range nodes {
			if !reachable[sink] || len(out[sink]) > 0 || sink == r {
				continue
			}
			for d := tree.DominatorOf(int64(sink)); d != nil && d.ID() != int64(r); d = tree.DominatorOf(d.ID()) {
				dominates[int(d.ID())] = appendUnique(dominates[int(d.ID())], nodes[r].Name+" → "+nodes[sink].Name)
			}
		}
	}
	for v, paths := range dominates {
		sort.Strings(paths)
		add(SPOFDominator, v, "every path "+strings.Join(paths, ", ")+" crosses it")
	}

	// Instances, consumers, partitions.
	groups := map[string]map[string]bool{}
	consumers := map[string]map[string]bool{}
	for _, e := range g.Edges {
		if e.Kind == graph.EdgeConsume {
			if groups[e.From.Key] == nil {
				groups[e.From.Key], consumers[e.From.Key] = map[string]bool{}, map[string]bool{}
			}
			groups[e.From.Key][e.Group] = true
			consumers[e.From.Key][e.To.Key] = true
		}
	}
	for i, n := range nodes {
		switch n.Kind {
		case graph.KindService:
			if len(n.Instances) == 1 {
				add(SPOFSingleInstance, i, "one instance seen: "+n.Instances[0])
			}
		case graph.KindTopic:
			if len(groups[n.Key]) == 1 && len(consumers[n.Key]) == 1 {
				var svc string
				for k := range consumers[n.Key] {
					svc = k
				}
				if c := g.Node(svc); c != nil && len(c.Instances) == 1 {
					var grp string
					for k := range groups[n.Key] {
						grp = k
					}
					// Its consumer failing is what cuts the topic's records off.
					addAs(SPOFSingleConsumer, i, idx[svc], fmt.Sprintf("read by one consumer group (%s) with one instance (%s)", grp, c.Instances[0]))
				}
			}
			if len(n.Partitions) == 1 {
				add(SPOFSinglePart, i, fmt.Sprintf("every record went to partition %d", n.Partitions[0]))
			}
		}
	}
	// A single instance matters where the service is an entry point, a
	// cut vertex or a dominator: there its failure cuts off more than
	// itself.
	structural := map[string]bool{}
	for _, r := range roots {
		structural[nodes[r].Key] = true
	}
	for _, f := range rep.Findings {
		if f.Kind == SPOFArticulation || f.Kind == SPOFDominator {
			structural[f.Node] = true
		}
	}
	for i := range rep.Findings {
		if f := &rep.Findings[i]; f.Kind == SPOFSingleInstance && !structural[f.Node] {
			f.Minor = true
		}
	}
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
