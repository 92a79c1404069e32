package docs_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/docs"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/trace"
)

var update = flag.Bool("update", false, "rewrite golden files")

func input(t *testing.T) docs.Input {
	t.Helper()
	var set trace.Set
	if _, err := file.ReadFile("../fixtures/stargazers-lost.ktrace", nil, &set, &trace.Resources{}); err != nil {
		t.Fatal(err)
	}
	traces := set.Traces()
	g := graph.Build(traces)
	sp, err := analyze.SPOF(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	owners := &docs.Owners{Services: map[string]docs.Owner{"stargazers-join": {Owner: "data-team", Lifecycle: "production"}}}
	return docs.Input{Graph: g, Breaks: analyze.Breaks(traces, g, analyze.Options{SkewTolerance: 10 * time.Millisecond}), SPOF: sp, Owners: owners}
}

// The whole tree from the stack's recorded traces, against golden files
// (graph.svg is checked for shape only: the renderer's layout is its own).
func TestGolden(t *testing.T) {
	dir := t.TempDir()
	paths, err := docs.Generate(context.Background(), dir, input(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"asyncapi/github-source.yaml", "asyncapi/stargazers-api.yaml", "asyncapi/stargazers-flatten.yaml", "asyncapi/stargazers-join.yaml",
		"catalog-info.yaml", "graph.dot", "graph.svg", "index.html", "index.md",
		"services/github-source.md", "services/stargazers-api.md", "services/stargazers-flatten.md", "services/stargazers-join.md",
		"topics/github-avro-stargazers-jackdaw.md", "topics/github-avro-stargazers-kafka.md", "topics/stargazers-flat.md", "topics/stargazers-results.md"}
	if strings.Join(paths, ",") != strings.Join(want, ",") {
		t.Fatalf("paths %v", paths)
	}
	for _, p := range paths {
		got, _ := os.ReadFile(filepath.Join(dir, p))
		if p == "index.html" {
			if !bytes.HasPrefix(got, []byte("<!doctype html>")) || !bytes.Contains(got, []byte(`"noStats":true`)) || bytes.Contains(got, []byte(`"count":24`)) {
				t.Error("index.html is not the map without counts")
			}
			continue
		}
		if p == "graph.svg" {
			g := input(t).Graph
			if !bytes.Contains(got, []byte("<svg")) || bytes.Count(got, []byte(`class="node"`)) != len(g.Nodes) ||
				bytes.Count(got, []byte(`class="edge"`)) != len(g.Edges) {
				t.Errorf("graph.svg does not draw the graph's %d nodes and %d edges", len(g.Nodes), len(g.Edges))
			}
			continue
		}
		golden := filepath.Join("testdata", "TestGolden", p+".golden")
		if *update {
			os.MkdirAll(filepath.Dir(golden), 0o755)
			os.WriteFile(golden, got, 0o644)
		}
		w, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (go test ./docs -update)", err)
		}
		if !bytes.Equal(got, w) {
			t.Errorf("%s differs from %s", p, golden)
		}
	}
	idx, _ := os.ReadFile(filepath.Join(dir, "index.md"))
	for _, s := range []string{"```mermaid", "{{\"stargazers-results\"}}", "-.->|\"stitched\"|", "context lost inside stargazers-join"} {
		if !bytes.Contains(idx, []byte(s)) {
			t.Errorf("index.md lacks %q", s)
		}
	}
}

// Without --stats the pages hold the topology only: a different set of
// traces of the same system gives the same files, byte for byte. With it,
// counts and percentiles are there.
func TestStatsOnlyWhenAsked(t *testing.T) {
	var set trace.Set
	if _, err := file.ReadFile("../fixtures/stargazers-lost.ktrace", nil, &set, &trace.Resources{}); err != nil {
		t.Fatal(err)
	}
	all := set.Traces()
	var longer []trace.Trace
	// The same system seen longer: every trace again under a new trace ID,
	// with slower spans (other counts, other percentiles, same wiring).
	longer = append(longer, all...)
	for i := range all {
		tr := all[i]
		tr.ID.High ^= 1 << 62
		tr.Spans = append([]trace.Span(nil), tr.Spans...)
		for j := range tr.Spans {
			sp := &tr.Spans[j]
			sp.TraceID = tr.ID
			sp.Duration *= 2
			sp.Refs = append([]trace.Ref(nil), sp.Refs...)
			for k := range sp.Refs {
				if sp.Refs[k].TraceID == all[i].ID {
					sp.Refs[k].TraceID = tr.ID
				}
			}
		}
		longer = append(longer, tr)
	}
	gen := func(traces []trace.Trace, stats bool) string {
		g := graph.Build(traces)
		sp, _ := analyze.SPOF(g, nil)
		dir := t.TempDir()
		in := docs.Input{Graph: g, Breaks: analyze.Breaks(traces, g, analyze.Options{SkewTolerance: 10 * time.Millisecond}), SPOF: sp, Stats: stats}
		if _, err := docs.Generate(context.Background(), dir, in); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	a, b := gen(all, false), gen(longer, false)
	if ga, gb := graph.Build(all), graph.Build(longer); len(ga.Edges) != len(gb.Edges) || ga.Spans == gb.Spans {
		t.Fatalf("the two sets should share a topology and differ in counts: %d/%d edges, %d/%d spans", len(ga.Edges), len(gb.Edges), ga.Spans, gb.Spans)
	}
	filepath.WalkDir(a, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		x, _ := os.ReadFile(p)
		y, _ := os.ReadFile(filepath.Join(b, rel))
		if !bytes.Equal(x, y) {
			t.Errorf("%s changed with the trace set though the topology did not", rel)
		}
		return nil
	})
	idx, _ := os.ReadFile(filepath.Join(gen(all, true), "index.md"))
	if idx2, _ := os.ReadFile(filepath.Join(gen(longer, true), "index.md")); bytes.Equal(idx, idx2) {
		t.Error("with stats, the two sets give the same index.md")
	}
	for _, s := range []string{"stitched ×24", "Rebuilt from 308 traces"} {
		if !bytes.Contains(idx, []byte(s)) {
			t.Errorf("with stats, index.md lacks %q", s)
		}
	}
	page, _ := os.ReadFile(filepath.Join(gen(all, true), "topics", "stargazers-results.md"))
	if !bytes.Contains(page, []byte("lag p99")) {
		t.Error("with stats, a topic page lacks its lag percentiles")
	}
}

// Hand-written text between keep markers survives; the rest is regenerated,
// and output is deterministic.
func TestKeepBlocksAndDeterminism(t *testing.T) {
	dir := t.TempDir()
	in := input(t)
	if _, err := docs.Generate(context.Background(), dir, in); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(dir, "services", "stargazers-join.md")
	b, _ := os.ReadFile(page)
	edited := strings.Replace(string(b), "_What stargazers-join does. Text between these markers survives `ktrace docs`._",
		"Joins stars of both repositories.\nOwned by the data team.", 1)
	edited = strings.Replace(edited, "## Operations", "## Operations (edited outside a block)", 1)
	os.WriteFile(page, []byte(edited), 0o644)
	if _, err := docs.Generate(context.Background(), dir, in); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(page)
	if !strings.Contains(string(b), "Joins stars of both repositories.\nOwned by the data team.\n<!-- ktrace:end description -->") {
		t.Errorf("kept block lost:\n%s", b)
	}
	if strings.Contains(string(b), "(edited outside a block)") {
		t.Error("text outside keep blocks survived")
	}
	other := t.TempDir()
	docs.Generate(context.Background(), other, in)
	a, _ := os.ReadFile(filepath.Join(dir, "catalog-info.yaml"))
	c, _ := os.ReadFile(filepath.Join(other, "catalog-info.yaml"))
	if !bytes.Equal(a, c) {
		t.Error("two runs differ")
	}
}

// The official AsyncAPI parser accepts every generated document, and
// Graphviz's dot accepts graph.dot.
func TestGeneratedFilesValidate(t *testing.T) {
	dir := t.TempDir()
	paths, err := docs.Generate(context.Background(), dir, input(t))
	if err != nil {
		t.Fatal(err)
	}
	nodePath := os.Getenv("KTRACE_NODE_PATH")
	if nodePath == "" {
		home, _ := os.UserHomeDir()
		nodePath = filepath.Join(home, ".cache", "ktrace", "asyncapi-parser-3.6.3", "node_modules")
	}
	if _, err := os.Stat(filepath.Join(nodePath, "@asyncapi", "parser")); err != nil {
		t.Fatalf("@asyncapi/parser not installed in %s: run scripts/install-docs-tools", nodePath)
	}
	var specs []string
	for _, p := range paths {
		if strings.HasPrefix(p, "asyncapi/") {
			specs = append(specs, filepath.Join(dir, p))
		}
	}
	cmd := exec.Command("node", append([]string{"../scripts/validate-asyncapi.js"}, specs...)...)
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("AsyncAPI parser: %v\n%s", err, out)
	} else if strings.Count(string(out), ": valid") != len(specs) {
		t.Fatalf("parser output:\n%s", out)
	}
	if _, err := exec.LookPath("dot"); err != nil {
		t.Fatal("Graphviz dot not installed: run scripts/install-docs-tools")
	}
	if out, err := exec.Command("dot", "-Tsvg", "-o", os.DevNull, filepath.Join(dir, "graph.dot")).CombinedOutput(); err != nil {
		t.Fatalf("dot: %v\n%s", err, out)
	}
}
