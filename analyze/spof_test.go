package analyze_test

import (
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/trace"
)

// components counts connected components of adj without node skip.
func components(adj [][]int, skip int, skipEdge [2]int) int {
	seen := make([]bool, len(adj))
	n := 0
	for s := range adj {
		if s == skip || seen[s] {
			continue
		}
		n++
		stack := []int{s}
		seen[s] = true
		for len(stack) > 0 {
			u := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, v := range adj[u] {
				if v == skip || seen[v] || [2]int{min(u, v), max(u, v)} == skipEdge {
					continue
				}
				seen[v] = true
				stack = append(stack, v)
			}
		}
	}
	return n
}

// Tarjan's lowpoint algorithm agrees with brute force (remove a vertex or
// an edge, count components) on random graphs.
func TestArticulationPointsAgainstBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 300; round++ {
		n := 1 + r.IntN(12)
		adj := make([][]int, n)
		edges := map[[2]int]bool{}
		m := r.IntN(n * 2)
		for i := 0; i < m; i++ {
			a, b := r.IntN(n), r.IntN(n)
			if a == b || edges[[2]int{min(a, b), max(a, b)}] {
				continue
			}
			edges[[2]int{min(a, b), max(a, b)}] = true
			adj[a] = append(adj[a], b)
			adj[b] = append(adj[b], a)
		}
		cuts, bridges := analyze.ArticulationPoints(adj)
		base := components(adj, -1, [2]int{-1, -1})
		var wantCuts []int
		for v := 0; v < n; v++ {
			if components(adj, v, [2]int{-1, -1}) > base-boolInt(len(adj[v]) == 0) {
				wantCuts = append(wantCuts, v)
			}
		}
		var wantBridges [][2]int
		for e := range edges {
			if components(adj, -1, e) > base {
				wantBridges = append(wantBridges, e)
			}
		}
		sort.Slice(wantBridges, func(i, j int) bool {
			if wantBridges[i][0] != wantBridges[j][0] {
				return wantBridges[i][0] < wantBridges[j][0]
			}
			return wantBridges[i][1] < wantBridges[j][1]
		})
		if !reflect.DeepEqual(cuts, wantCuts) || !reflect.DeepEqual(bridges, wantBridges) {
			t.Fatalf("round %d, adj %v:\ncuts %v want %v\nbridges %v want %v", round, adj, cuts, wantCuts, bridges, wantBridges)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// graphOf builds a graph whose call edges are the given "a>b" pairs; each
// service has instances named in inst (default two, so not single-instance).
func graphOf(inst map[string][]string, pairs ...string) *graph.Graph {
	var traces []trace.Trace
	res := map[string][]*trace.Resource{}
	resource := func(svc string, i int) *trace.Resource {
		names := inst[svc]
		if names == nil {
			names = []string{svc + "-a", svc + "-b"}
		}
		if res[svc] == nil {
			for _, n := range names {
				res[svc] = append(res[svc], &trace.Resource{Service: svc, Attributes: trace.Attributes{{Key: "service.instance.id", Value: n}}})
			}
		}
		return res[svc][i%len(res[svc])]
	}
	id := uint64(0)
	for _, p := range pairs {
		a, b, _ := strings.Cut(p, ">")
		for i := 0; i < 2; i++ {
			id++
			tid := trace.TraceID{Low: id}
			traces = append(traces, trace.Trace{ID: tid, Spans: []trace.Span{
				{TraceID: tid, SpanID: 1, Kind: trace.KindClient, Resource: resource(a, i)},
				{TraceID: tid, SpanID: 2, Kind: trace.KindServer, Resource: resource(b, i), Refs: []trace.Ref{{TraceID: tid, SpanID: 1}}},
			}})
		}
	}
	return graph.Build(traces)
}

func findings(t *testing.T, g *graph.Graph, entries ...string) map[string][]string {
	t.Helper()
	rep, err := analyze.SPOF(g, entries)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, f := range rep.Findings {
		out[f.Kind] = append(out[f.Kind], f.Node)
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out
}

func TestSPOFChain(t *testing.T) {
	got := findings(t, graphOf(nil, "a>b", "b>c", "c>d"))
	want := map[string][]string{
		analyze.SPOFArticulation: {"service:b", "service:c"},
		analyze.SPOFBridge:       {"service:a -> service:b", "service:b -> service:c", "service:c -> service:d"},
		analyze.SPOFDominator:    {"service:b", "service:c"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestSPOFDiamond(t *testing.T) {
	// a → b → d and a → c → d: no cut vertex, no bridge; d's only dominator is a.
	got := findings(t, graphOf(nil, "a>b", "a>c", "b>d", "c>d", "d>e"))
	want := map[string][]string{
		analyze.SPOFArticulation: {"service:d"},
		analyze.SPOFBridge:       {"service:d -> service:e"},
		analyze.SPOFDominator:    {"service:d"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestSPOFStar(t *testing.T) {
	g := graphOf(map[string][]string{"hub": {"hub-0"}}, "hub>x", "hub>y", "hub>z")
	got := findings(t, g)
	if !reflect.DeepEqual(got[analyze.SPOFArticulation], []string{"service:hub"}) || len(got[analyze.SPOFBridge]) != 3 ||
		!reflect.DeepEqual(got[analyze.SPOFSingleInstance], []string{"service:hub"}) || got[analyze.SPOFDominator] != nil {
		t.Errorf("got %v", got)
	}
	rep, _ := analyze.SPOF(g, nil)
	if rep.Findings[0].Node != "service:hub" || len(rep.Findings[0].Blast) != 4 {
		t.Errorf("the hub should rank first with all four nodes in its blast radius: %+v", rep.Findings[0])
	}
}

func TestSPOFTwoEntries(t *testing.T) {
	// Two entries meet at m, which then feeds s: m dominates s from both.
	g := graphOf(nil, "e1>m", "e2>m", "m>s")
	rep, err := analyze.SPOF(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rep.Entries, []string{"service:e1", "service:e2"}) {
		t.Errorf("entries %v", rep.Entries)
	}
	var dom *analyze.SPOFFinding
	for i := range rep.Findings {
		if rep.Findings[i].Kind == analyze.SPOFDominator {
			dom = &rep.Findings[i]
		}
	}
	if dom == nil || dom.Node != "service:m" || !strings.Contains(dom.Reason, "e1 → s") || !strings.Contains(dom.Reason, "e2 → s") ||
		!reflect.DeepEqual(dom.Entries, []string{"service:e1", "service:e2"}) {
		t.Errorf("dominator %+v", dom)
	}
	// An explicit entry narrows it.
	if got := findings(t, g, "e1")[analyze.SPOFDominator]; !reflect.DeepEqual(got, []string{"service:m"}) {
		t.Errorf("--entry e1: %v", got)
	}
	if _, err := analyze.SPOF(g, []string{"nope"}); err == nil {
		t.Error("unknown entry accepted")
	}
}

func TestSPOFEmptyAndSingle(t *testing.T) {
	for _, g := range []*graph.Graph{graph.Build(nil), graphOf(nil)} {
		rep, err := analyze.SPOF(g, nil)
		if err != nil || len(rep.Findings) != 0 {
			t.Errorf("%+v %v", rep, err)
		}
	}
}

// On the stargazers stack: the join dominates the path from the jackdaw
// topic to the API, stargazers-results sits on bridges, and every
// single-replica service is flagged.
func TestSPOFStack(t *testing.T) {
	traces := load(t, "stargazers-lost")
	g := graph.Build(traces)
	got := findings(t, g, "github-avro-stargazers-jackdaw")
	if !contains(got[analyze.SPOFDominator], "service:stargazers-join") {
		t.Errorf("dominators from the jackdaw topic: %v", got[analyze.SPOFDominator])
	}
	all := findings(t, g)
	if !contains(all[analyze.SPOFBridge], "service:stargazers-join -> topic:stargazers-results") ||
		!contains(all[analyze.SPOFBridge], "topic:stargazers-results -> service:stargazers-api") {
		t.Errorf("bridges %v", all[analyze.SPOFBridge])
	}
	want := []string{"service:github-source", "service:stargazers-api", "service:stargazers-flatten", "service:stargazers-join"}
	if !reflect.DeepEqual(all[analyze.SPOFSingleInstance], want) {
		t.Errorf("single instance %v", all[analyze.SPOFSingleInstance])
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
