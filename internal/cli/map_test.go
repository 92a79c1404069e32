package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// mapRun is what scripts/test-map.cjs saw of a page in Chromium.
type mapRun struct {
	Requests, Console, Dialogs []string
	Nodes, Edges               int
	Broken                     []struct{ From, To, Color string }
	Clicked                    *struct {
		Title, Relation string
		Links           []string
	}
	Search struct {
		Matches string
		Faded   int
	}
	Marked           []string
	Pwned            int
	LoadMs, SearchMs int
	OK               bool
	Error            string
}

// inChromium opens page in Debian's Chromium through playwright-core
// (scripts/install-browser-tools installs both) and saves a screenshot as
// a test artefact, in $KTRACE_ARTIFACTS when set.
func inChromium(t testing.TB, page, shot, search string) mapRun {
	t.Helper()
	nodePath := os.Getenv("KTRACE_BROWSER_NODE_PATH")
	if nodePath == "" {
		home, _ := os.UserHomeDir()
		nodePath = filepath.Join(home, ".cache", "ktrace", "playwright-core-1.65.1", "node_modules")
	}
	if _, err := os.Stat(filepath.Join(nodePath, "playwright-core")); err != nil {
		t.Fatalf("playwright-core not installed in %s: run scripts/install-browser-tools", nodePath)
	}
	dir := os.Getenv("KTRACE_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	os.MkdirAll(dir, 0o755)
	cmd := exec.Command("node", "../../scripts/test-map.cjs", page, filepath.Join(dir, shot), search)
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("test-map.cjs: %v\n%s", err, out)
	}
	var r mapRun
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("test-map.cjs said %q: %v", out, err)
	}
	if !r.OK {
		t.Fatalf("in Chromium: %s", r.Error)
	}
	t.Logf("screenshot: %s", filepath.Join(dir, shot))
	return r
}

// The map of the stargazers stack's traces, in a real browser: the join's
// output hop is drawn broken, clicking it shows its example traces linked
// to the Jaeger UI, search filters, the side panel highlights a break; no
// console error and no request leaves the page.
func TestMapInBrowser(t *testing.T) {
	r := runIO(t, false, nil, "graph", "--fixture", "stargazers-lost", "-o", "html", "--ui-url", "http://127.0.0.1:16686")
	if r.code != 0 || !strings.HasPrefix(r.out, "<!doctype html>") {
		t.Fatalf("graph -o html: exit %d %s", r.code, r.err)
	}
	page := write(t, "map.html", []byte(r.out))
	m := inChromium(t, page, "map-stargazers.png", "flatten")
	if len(m.Requests) > 0 || len(m.Console) > 0 || len(m.Dialogs) > 0 {
		t.Errorf("requests %v, console errors %v, dialogs %v", m.Requests, m.Console, m.Dialogs)
	}
	if m.Nodes != 9 || m.Edges != 9 {
		t.Errorf("%d nodes and %d edges drawn, want 9 and 9", m.Nodes, m.Edges)
	}
	if len(m.Broken) != 1 || m.Broken[0].From != "service:stargazers-join" || m.Broken[0].To != "topic:stargazers-results" || m.Broken[0].Color != "rgb(221,51,51)" {
		t.Errorf("broken hops drawn: %+v, want the join's output, red", m.Broken)
	}
	if m.Clicked == nil || m.Clicked.Relation != "stitched" || len(m.Clicked.Links) == 0 ||
		!strings.HasPrefix(m.Clicked.Links[0], "http://127.0.0.1:16686/trace/") {
		t.Errorf("clicking the join's output hop: %+v", m.Clicked)
	}
	if m.Search.Matches == "" || m.Search.Matches == "0" || m.Search.Faded == 0 {
		t.Errorf("search for flatten: %+v", m.Search)
	}
	if !slices.Contains(m.Marked, "service:stargazers-join") || !slices.Contains(m.Marked, "topic:stargazers-results") {
		t.Errorf("the break in the side panel marks %v", m.Marked)
	}
}

// Hostile names cannot add markup or script to the page.
func TestMapHostileNames(t *testing.T) {
	r := runIO(t, false, nil, "graph", "--file", hostileTracesFile(t), "-o", "html")
	if r.code != 0 {
		t.Fatalf("graph -o html: exit %d %s", r.code, r.err)
	}
	if strings.Contains(r.out, "<img src=x") || strings.Contains(r.out, "<script>alert") {
		t.Error("a name reached the page's markup")
	}
	page := write(t, "hostile.html", []byte(r.out))
	m := inChromium(t, page, "map-hostile.png", "<script>")
	if m.Pwned != 0 || len(m.Dialogs) > 0 || len(m.Requests) > 0 || len(m.Console) > 0 {
		t.Errorf("hostile names: pwned %d, dialogs %v, requests %v, console %v", m.Pwned, m.Dialogs, m.Requests, m.Console)
	}
	if m.Nodes != 2*len(hostileNames) {
		t.Errorf("%d nodes drawn, want %d", m.Nodes, 2*len(hostileNames))
	}
}

// BenchmarkMap1000Edges opens the map of a graph of 1,000 edges (500
// services, 100 topics) in Chromium and reports how long the page takes
// to lay out and draw (load_ms) and to answer a search (search_ms).
func BenchmarkMap1000Edges(b *testing.B) {
	var data []map[string]any
	tag := func(k string, v any) map[string]any { return map[string]any{"key": k, "value": v} }
	for i := 0; i < 500; i++ {
		topic := fmt.Sprintf("topic-%03d", i%100)
		kind, tags := "producer", []any{tag("messaging.destination.name", topic)}
		if i%2 == 1 {
			kind, tags = "consumer", []any{tag("messaging.source.name", fmt.Sprintf("topic-%03d", (i*7)%100)), tag("messaging.kafka.consumer.group", fmt.Sprintf("g%d", i))}
		}
		for j := 0; j < 2; j++ { // two hops per service: 1,000 edges
			id := fmt.Sprintf("%016x%016x", i+1, j+1)
			spanTags := append([]any{tag("span.kind", kind), tag("messaging.system", "kafka")}, tags...)
			if j == 1 {
				spanTags = []any{tag("span.kind", "client"), tag("peer.service", fmt.Sprintf("db-%03d", i))}
			}
			data = append(data, map[string]any{"traceID": id, "processes": map[string]any{"p": map[string]any{"serviceName": fmt.Sprintf("svc-%03d", i)}},
				"spans": []any{map[string]any{"traceID": id, "spanID": "0000000000000001", "processID": "p", "operationName": "op",
					"startTime": 1795637299000000 + i, "duration": 100, "tags": spanTags}}})
		}
	}
	in, _ := json.Marshal(map[string]any{"data": data})
	dir := b.TempDir()
	src := filepath.Join(dir, "big.json")
	os.WriteFile(src, in, 0o644)
	r := runIO(b, false, nil, "graph", "--file", src, "-o", "html")
	if r.code != 0 {
		b.Fatalf("graph -o html: %d %s", r.code, r.err)
	}
	page := filepath.Join(dir, "big.html")
	os.WriteFile(page, []byte(r.out), 0o644)
	for i := 0; i < b.N; i++ {
		m := inChromium(b, page, "map-1000-edges.png", "svc-042")
		if m.Edges < 1000 {
			b.Fatalf("%d edges drawn", m.Edges)
		}
		b.ReportMetric(float64(m.LoadMs), "load_ms")
		b.ReportMetric(float64(m.SearchMs), "search_ms")
	}
}
