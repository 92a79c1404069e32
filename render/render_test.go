package render_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/render"
	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/trace"
)

var update = flag.Bool("update", false, "rewrite golden files")

func fixtureGraph(t *testing.T, name string) *graph.Graph {
	t.Helper()
	var set trace.Set
	if _, err := file.ReadFile("../fixtures/"+name+".json", nil, &set, &trace.Resources{}); err != nil {
		t.Fatal(err)
	}
	return graph.Build(set.Traces())
}

// golden compares got with testdata/<name>.golden; escape sequences are
// written visibly so colour shows up in diffs.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	got = bytes.ReplaceAll(got, []byte("\x1b"), []byte(`\x1b`))
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./render -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestGolden(t *testing.T) {
	g := fixtureGraph(t, "broken-hop")
	var b bytes.Buffer
	cases := []struct {
		name string
		fn   func() error
	}{
		{"TestGolden_tsv", func() error { return render.GraphText(&b, g, render.Style{}) }},
		{"TestGolden_table", func() error { return render.GraphText(&b, g, render.Style{TTY: true}) }},
		{"TestGolden_table_color", func() error { return render.GraphText(&b, g, render.Style{TTY: true, Color: true}) }},
		{"TestGolden_json", func() error { return render.JSON(&b, render.ToJSON(g)) }},
		{"TestGolden_dot", func() error { return render.DOT(&b, g) }},
		{"TestGolden_mermaid", func() error { return render.Mermaid(&b, g) }},
	}
	for _, c := range cases {
		b.Reset()
		if err := c.fn(); err != nil {
			t.Fatal(err)
		}
		golden(t, c.name, b.Bytes())
	}
}

func TestPlainTableHasNoEscapes(t *testing.T) {
	g := fixtureGraph(t, "rpc-chain")
	for _, st := range []render.Style{{}, {TTY: true}} {
		var b bytes.Buffer
		if err := render.GraphText(&b, g, st); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(b.String(), "\x1b") {
			t.Errorf("style %+v wrote escape sequences", st)
		}
	}
	var b bytes.Buffer
	render.GraphText(&b, g, render.Style{})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 1+len(g.Edges) || strings.Count(lines[1], "\t") != 9 {
		t.Errorf("tab-separated output:\n%s", b.String())
	}
}

func TestJSONStableFields(t *testing.T) {
	var b bytes.Buffer
	if err := render.JSON(&b, render.ToJSON(fixtureGraph(t, "broken-hop"))); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "traces", "spans", "nodes", "edges", "stitches"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("missing top-level field %q", k)
		}
	}
	edge := doc["edges"].([]any)[0].(map[string]any)
	for _, k := range []string{"from", "to", "kind", "relation", "count", "errors", "p50_ms", "p95_ms", "p99_ms"} {
		if _, ok := edge[k]; !ok {
			t.Errorf("missing edge field %q", k)
		}
	}
	st := doc["stitches"].([]any)[0].(map[string]any)
	for _, k := range []string{"topic", "partition", "offset", "producer", "consumer"} {
		if _, ok := st[k]; !ok {
			t.Errorf("missing stitch field %q", k)
		}
	}
}

func TestEmptyGraphRenders(t *testing.T) {
	g := graph.Build(nil)
	var b bytes.Buffer
	if err := render.JSON(&b, render.ToJSON(g)); err != nil || !strings.Contains(b.String(), `"edges": []`) {
		t.Errorf("json %q %v", b.String(), err)
	}
	b.Reset()
	if err := render.Mermaid(&b, g); err != nil || b.String() != "flowchart LR\n" {
		t.Errorf("mermaid %q", b.String())
	}
}
