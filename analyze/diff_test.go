package analyze_test

import (
	"testing"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
)

func TestDiffLostVersusLinks(t *testing.T) {
	lost := graph.Build(load(t, "stargazers-lost"))
	links := graph.Build(load(t, "stargazers-links"))
	if ch := analyze.Diff(lost, lost, analyze.DiffOptions{}); len(ch) != 0 {
		t.Errorf("identical inputs: %+v", ch)
	}
	var rel *analyze.Change
	for _, c := range analyze.Diff(lost, links, analyze.DiffOptions{LatencyThreshold: 1000}) {
		if c.Kind == analyze.ChangeRelation {
			c := c
			rel = &c
		}
	}
	if rel == nil || rel.Subject != "service:stargazers-join -> topic:stargazers-results (produce)" || rel.Before != "stitched" || rel.After != "parent" || rel.Broke {
		t.Errorf("relation change %+v", rel)
	}
	// The other way round the hop broke.
	for _, c := range analyze.Diff(links, lost, analyze.DiffOptions{LatencyThreshold: 1000}) {
		if c.Kind == analyze.ChangeRelation && !c.Broke {
			t.Errorf("links → lost should be a break: %+v", c)
		}
	}
}

func TestDiffNodesEdgesLatency(t *testing.T) {
	a := graphOf(nil, "a>b", "b>c")
	b := graphOf(nil, "a>b", "b>d")
	got := map[string]string{}
	for _, c := range analyze.Diff(a, b, analyze.DiffOptions{}) {
		got[c.Kind] += c.Subject + ";"
	}
	want := map[string]string{
		analyze.ChangeEdgeAdded:   "service:b -> service:d (call);",
		analyze.ChangeEdgeRemoved: "service:b -> service:c (call);",
		analyze.ChangeNodeAdded:   "service:d;",
		analyze.ChangeNodeRemoved: "service:c;",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q want %q", k, got[k], v)
		}
	}
}

func TestDiffLatencyRegression(t *testing.T) {
	before := load(t, "stargazers-lost")
	after := load(t, "stargazers-lost")
	for i := range after {
		for j := range after[i].Spans {
			after[i].Spans[j].Duration *= 3
		}
	}
	found := false
	for _, c := range analyze.Diff(graph.Build(before), graph.Build(after), analyze.DiffOptions{}) {
		if c.Kind == analyze.ChangeLatencyRegressed && c.Subject == "service:stargazers-flatten -> topic:stargazers-flat (produce)" {
			found = true
		}
		if c.Kind != analyze.ChangeLatencyRegressed {
			t.Errorf("unexpected change %+v", c)
		}
	}
	if !found {
		t.Error("tripled produce durations not reported as a regression")
	}
}
