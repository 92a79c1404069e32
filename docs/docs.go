package docs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/render"
)

// Owner is what the mapping file says of a service.
type Owner struct {
	Owner     string `yaml:"owner"`
	Lifecycle string `yaml:"lifecycle"`
}

// Owners maps services to owners; Default applies to the rest.
type Owners struct {
	Default  Owner            `yaml:"default"`
	Services map[string]Owner `yaml:"services"`
}

// ParseOwners reads a mapping file:
//
//	default: {owner: platform-team, lifecycle: production}
//	services:
//	  stargazers-join: {owner: data-team}
//
// path names the file in errors.
func ParseOwners(path string, b []byte) (*Owners, error) {
	var o Owners
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&o); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return &o, nil
}

func (o *Owners) of(service string) (owner, lifecycle string, set bool) {
	var d Owner
	if o != nil {
		d = o.Default
		if s, ok := o.Services[service]; ok {
			if s.Owner != "" {
				d.Owner = s.Owner
			}
			if s.Lifecycle != "" {
				d.Lifecycle = s.Lifecycle
			}
		}
	}
	set = d.Owner != ""
	if d.Owner == "" {
		d.Owner = "unknown"
	}
	if d.Lifecycle == "" {
		d.Lifecycle = "unknown"
	}
	return d.Owner, d.Lifecycle, set
}

// Input is what the documentation is made of.
type Input struct {
	Graph  *graph.Graph
	Breaks analyze.Report
	SPOF   analyze.SPOFReport
	Owners *Owners
	// Generated, when not zero, is stamped into the pages.
	Generated time.Time
	// Stats adds what changes with every set of traces — trace, span,
	// record and error counts, error rates, latency percentiles — to the
	// pages. Without it the pages hold the topology only, so regenerating
	// them changes nothing in git unless the system's wiring changed.
	Stats bool

	// files maps "service:NAME" and "topic:NAME" to the page's file name
	// (without extension); Generate fills it.
	files map[string]string
}

// Generate writes the documentation tree into dir, keeping hand-written
// blocks of the Markdown pages already there. It returns the paths written,
// relative to dir, sorted.
func Generate(ctx context.Context, dir string, in Input) ([]string, error) {
	files := map[string][]byte{}
	g := in.Graph
	in.files = fileNames(g)
	files["index.md"] = index(in)
	for _, n := range g.Nodes {
		switch n.Kind {
		case graph.KindService:
			files["services/"+in.file(n)+".md"] = servicePage(in, n)
			files["asyncapi/"+in.file(n)+".yaml"] = asyncAPI(in, n)
		case graph.KindTopic:
			files["topics/"+in.file(n)+".md"] = topicPage(in, n)
		}
	}
	var dot bytes.Buffer
	if err := render.DOTWith(&dot, g, render.Diagram{NoCounts: !in.Stats}); err != nil {
		return nil, err
	}
	files["graph.dot"] = dot.Bytes()
	var svg bytes.Buffer
	if err := render.SVG(&svg, g, render.Diagram{NoCounts: !in.Stats}); err != nil {
		return nil, err
	}
	files["graph.svg"] = svg.Bytes()
	files["catalog-info.yaml"] = catalog(in)
	m := render.ToMap(g, in.Breaks, in.SPOF, "")
	if !in.Stats {
		m = m.WithoutStats()
	}
	var page bytes.Buffer
	if err := render.HTML(&page, m); err != nil {
		return nil, err
	}
	files["index.html"] = page.Bytes()

	var paths []string
	for p, content := range files {
		full := filepath.Join(dir, p)
		if strings.HasSuffix(p, ".md") {
			if old, err := os.ReadFile(full); err == nil {
				content = keepBlocks(old, content)
			}
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return nil, err
		}
		if err := writeIfChanged(full, content); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths, nil
}

func writeIfChanged(path string, content []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, content) {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, content, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

var keepRE = regexp.MustCompile(`(?s)<!-- ktrace:keep ([A-Za-z0-9_.-]+) -->\n(.*?)<!-- ktrace:end ([A-Za-z0-9_.-]+) -->`)

// keepBlocks copies the content of every keep block of old into the block
// of the same name in fresh.
func keepBlocks(old, fresh []byte) []byte {
	kept := map[string][]byte{}
	for _, m := range keepRE.FindAllSubmatch(old, -1) {
		if string(m[1]) == string(m[3]) {
			kept[string(m[1])] = m[2]
		}
	}
	return keepRE.ReplaceAllFunc(fresh, func(block []byte) []byte {
		m := keepRE.FindSubmatch(block)
		body, ok := kept[string(m[1])]
		if !ok {
			return block
		}
		return []byte(fmt.Sprintf("<!-- ktrace:keep %s -->\n%s<!-- ktrace:end %s -->", m[1], body, m[1]))
	})
}

func keep(name, placeholder string) string {
	return fmt.Sprintf("<!-- ktrace:keep %s -->\n%s\n<!-- ktrace:end %s -->\n", name, placeholder, name)
}

var unsafe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// slug is a name made safe as a file name: letters, digits, '.', '_' and
// '-' only, not starting with '.' or '-' (no hidden file, no flag, no
// "..") and at most 80 bytes.
func slug(s string) string {
	s = strings.Trim(unsafe.ReplaceAllString(s, "_"), "_")
	s = strings.TrimLeft(s, ".-_")
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

// windowsReserved are names Windows will not create a file under.
var windowsReserved = regexp.MustCompile(`(?i)^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\.|$)`)

// fileNames gives every service and topic a file name of its own: its
// slug, with a short hash of the name added where the slug is empty,
// reserved, or shared (ignoring case, for case-insensitive file systems)
// with another name of the same kind. The same graph gives the same names.
func fileNames(g *graph.Graph) map[string]string {
	byKind := map[graph.NodeKind]map[string][]string{}
	for _, n := range g.Nodes {
		if n.Kind != graph.KindService && n.Kind != graph.KindTopic {
			continue
		}
		if byKind[n.Kind] == nil {
			byKind[n.Kind] = map[string][]string{}
		}
		k := strings.ToLower(slug(n.Name))
		if !contains(byKind[n.Kind][k], n.Name) {
			byKind[n.Kind][k] = append(byKind[n.Kind][k], n.Name)
		}
	}
	out := map[string]string{}
	for kind, slugs := range byKind {
		for _, names := range slugs {
			for _, name := range names {
				f := slug(name)
				if len(names) > 1 || f == "" || windowsReserved.MatchString(f) {
					sum := sha256.Sum256([]byte(name))
					f = strings.TrimSuffix(f+"-"+hex.EncodeToString(sum[:4]), "-")
					f = strings.TrimLeft(f, "-")
				}
				out[fileKey(kind, name)] = f
			}
		}
	}
	return out
}

func fileKey(kind graph.NodeKind, name string) string {
	if kind == graph.KindTopic {
		return "topic:" + name
	}
	return "service:" + name
}

// file is the page's file name of a service or topic node.
func (in Input) file(n *graph.Node) string { return in.files[fileKey(n.Kind, n.Name)] }

// serviceFile is the page's file name of a service by its name.
func (in Input) serviceFile(name string) string { return in.files[fileKey(graph.KindService, name)] }

func header(in Input) string {
	s := "<!-- generated by ktrace from traces; edit only inside ktrace:keep blocks -->\n"
	if in.Stats {
		s = fmt.Sprintf("<!-- generated by ktrace from %d traces (%d spans); edit only inside ktrace:keep blocks -->\n", in.Graph.Traces, in.Graph.Spans)
	}
	if !in.Generated.IsZero() {
		s += fmt.Sprintf("<!-- generated at %s -->\n", in.Generated.UTC().Format(time.RFC3339))
	}
	return s
}

// link is a Markdown link to a node's page (a name for nodes without one).
// Names are escaped; file names are slugs, safe in a link target.
func (in Input) link(n *graph.Node, fromSub bool) string {
	prefix := ""
	if fromSub {
		prefix = "../"
	}
	switch n.Kind {
	case graph.KindService:
		return fmt.Sprintf("[%s](%sservices/%s.md)", md(n.Name), prefix, in.file(n))
	case graph.KindTopic:
		return fmt.Sprintf("[%s](%stopics/%s.md)", md(n.Name), prefix, in.file(n))
	case graph.KindUnknownCaller:
		return "(unknown caller)"
	}
	return md(n.Key)
}

// md escapes a name from the traces for Markdown text and table cells.
func md(s string) string { return render.Markdown(s) }

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f ms", float64(d.Microseconds())/1000)
}

func errRate(e *graph.Edge) string {
	if e.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(e.Errors)/float64(e.Count))
}

func index(in Input) []byte {
	g := in.Graph
	var b strings.Builder
	b.WriteString(header(in))
	b.WriteString("# System documentation\n\n")
	b.WriteString(keep("overview", "_What this system does, who runs it. Text between these markers survives `ktrace docs`._"))
	if in.Stats {
		fmt.Fprintf(&b, "\nRebuilt from %d traces (%d spans): %d services, %d topics.\n\n", g.Traces, g.Spans, count(g, graph.KindService), count(g, graph.KindTopic))
	} else {
		fmt.Fprintf(&b, "\nRebuilt from traces: %d services, %d topics.\n\n", count(g, graph.KindService), count(g, graph.KindTopic))
	}
	b.WriteString("## Service graph\n\nTopics are hexagons; broken hops (stitched: trace context lost) are dashed and red.\n\n```mermaid\n")
	render.MermaidWith(&b, g, render.Diagram{NoCounts: !in.Stats})
	b.WriteString("```\n\nExplore it in the interactive map, [index.html](index.html) (one page, no network); also as [graph.dot](graph.dot) and [graph.svg](graph.svg).\n\n## Services\n\n| service | instances | operations | produces | consumes |\n|---|---:|---:|---|---|\n")
	for _, n := range g.Nodes {
		if n.Kind != graph.KindService {
			continue
		}
		var prod, cons []string
		for _, e := range g.Edges {
			if e.From == n && e.Kind == graph.EdgeProduce {
				prod = appendUniq(prod, in.link(e.To, false))
			}
			if e.To == n && e.Kind == graph.EdgeConsume {
				cons = appendUniq(cons, in.link(e.From, false))
			}
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s |\n", in.link(n, false), len(n.Instances), len(n.Operations), strings.Join(prod, ", "), strings.Join(cons, ", "))
	}
	b.WriteString("\n## Topics\n\n| topic | producers | consumer groups | partitions seen |\n|---|---|---|---|\n")
	for _, n := range g.Nodes {
		if n.Kind != graph.KindTopic {
			continue
		}
		var prod, groups []string
		for _, e := range g.Edges {
			if e.To == n && e.Kind == graph.EdgeProduce {
				prod = appendUniq(prod, in.link(e.From, false))
			}
			if e.From == n && e.Kind == graph.EdgeConsume {
				groups = appendUniq(groups, fmt.Sprintf("%s (%s)", md(e.Group), in.link(e.To, false)))
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", in.link(n, false), strings.Join(prod, ", "), strings.Join(groups, ", "), partitions(n))
	}
	b.WriteString("\n## Where traces break\n\n")
	render.ReportSentences(&b, in.Breaks, md, in.Stats)
	b.WriteString("\n## Single points of failure\n\n")
	if nodes := in.SPOF.ByNode(); len(nodes) == 0 {
		b.WriteString("None found.\n")
	} else {
		b.WriteString("| node | risks | why | blast radius |\n|---|---|---|---:|\n")
		for _, n := range nodes {
			fmt.Fprintf(&b, "| %s | %s | %s | %d |\n", md(n.Node), md(strings.Join(n.Kinds, ", ")), md(strings.Join(n.Reasons, "; ")), len(n.Blast))
		}
	}
	return []byte(b.String())
}

func count(g *graph.Graph, k graph.NodeKind) int {
	n := 0
	for _, x := range g.Nodes {
		if x.Kind == k {
			n++
		}
	}
	return n
}

func partitions(n *graph.Node) string {
	if len(n.Partitions) == 0 {
		return "-"
	}
	var p []string
	for _, x := range n.Partitions {
		p = append(p, fmt.Sprint(x))
	}
	return strings.Join(p, ", ")
}

func appendUniq(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func (in Input) edgeRow(b *strings.Builder, e *graph.Edge, other *graph.Node) {
	group := md(e.Group)
	if group == "" {
		group = "-"
	}
	if !in.Stats {
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", in.link(other, true), e.Kind, e.Relation, group)
		return
	}
	fmt.Fprintf(b, "| %s | %s | %s | %s | %d | %s | %s | %s | %s |\n", in.link(other, true), e.Kind, e.Relation, group, e.Count, errRate(e), ms(e.P50), ms(e.P95), ms(e.P99))
}

func servicePage(in Input, n *graph.Node) []byte {
	g := in.Graph
	var b strings.Builder
	b.WriteString(header(in))
	fmt.Fprintf(&b, "# %s\n\n", md(n.Name))
	b.WriteString(keep("description", "_What "+md(n.Name)+" does. Text between these markers survives `ktrace docs`._"))
	fmt.Fprintf(&b, "\n[AsyncAPI](../asyncapi/%s.yaml) · [index](../index.md)\n\n", in.file(n))
	fmt.Fprintf(&b, "## Instances\n\n%d seen", len(n.Instances))
	if len(n.Instances) > 0 {
		inst := make([]string, len(n.Instances))
		for i, x := range n.Instances {
			inst[i] = md(x)
		}
		fmt.Fprintf(&b, ": %s", strings.Join(inst, ", "))
	}
	if in.Stats {
		fmt.Fprintf(&b, ". %s, %s", render.N(n.Spans, "span"), render.N(n.Errors, "error"))
	}
	b.WriteString(".\n\n## Operations\n\n")
	for _, op := range n.Operations {
		fmt.Fprintf(&b, "- %s\n", md(op))
	}
	head := "| %s | kind | relation | group |\n|---|---|---|---|\n"
	if in.Stats {
		head = "| %s | kind | relation | group | count | error rate | p50 | p95 | p99 |\n|---|---|---|---|---:|---:|---:|---:|---:|\n"
	}
	b.WriteString("\n## Upstream\n\n")
	fmt.Fprintf(&b, head, "from")
	for _, e := range g.Edges {
		if e.To == n {
			in.edgeRow(&b, e, e.From)
		}
	}
	b.WriteString("\n## Downstream\n\n")
	fmt.Fprintf(&b, head, "to")
	for _, e := range g.Edges {
		if e.From == n {
			in.edgeRow(&b, e, e.To)
		}
	}
	if in.Stats {
		b.WriteString("\nLatency: calls, the client span's duration; produce, the produce span's duration; consume, producer start → consumer start.\n")
	}
	b.WriteString("\n## Breaks\n\n")
	any := false
	for _, f := range in.Breaks.Findings {
		if f.Service == n.Name || contains(f.From, n.Name) {
			if in.Stats {
				fmt.Fprintf(&b, "- `%s`: %s (%s)\n", f.Rule, md(f.Where), render.N(f.Traces, "trace"))
			} else {
				fmt.Fprintf(&b, "- `%s`: %s\n", f.Rule, md(f.Where))
			}
			any = true
		}
	}
	if !any {
		b.WriteString("None found.\n")
	}
	b.WriteString("\n## Single points of failure\n\n")
	any = false
	for _, f := range in.SPOF.Findings {
		if f.Minor {
			continue
		}
		if f.Node == n.Key || strings.HasPrefix(f.Node, n.Key+" ") || strings.HasSuffix(f.Node, " "+n.Key) {
			fmt.Fprintf(&b, "- %s %s: %s; blast radius %d\n", md(f.Kind), md(f.Node), md(f.Reason), len(f.Blast))
			any = true
		}
	}
	if !any {
		b.WriteString("None found.\n")
	}
	return []byte(b.String())
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func topicPage(in Input, n *graph.Node) []byte {
	g := in.Graph
	var b strings.Builder
	b.WriteString(header(in))
	fmt.Fprintf(&b, "# Topic %s\n\n", md(n.Name))
	b.WriteString(keep("description", "_What records on "+md(n.Name)+" mean. Text between these markers survives `ktrace docs`._"))
	fmt.Fprintf(&b, "\nPartitions seen: %s.", partitions(n))
	if in.Stats {
		fmt.Fprintf(&b, " %d produce and consume spans, %d errors.", n.Spans, n.Errors)
	}
	b.WriteString(" [index](../index.md)\n\n## Producers\n\n")
	if in.Stats {
		b.WriteString("| service | relation | records | error rate | p50 | p95 | p99 |\n|---|---|---:|---:|---:|---:|---:|\n")
	} else {
		b.WriteString("| service | relation |\n|---|---|\n")
	}
	for _, e := range g.Edges {
		if e.To == n && e.Kind == graph.EdgeProduce {
			if in.Stats {
				fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s |\n", in.link(e.From, true), e.Relation, e.Count, errRate(e), ms(e.P50), ms(e.P95), ms(e.P99))
			} else {
				fmt.Fprintf(&b, "| %s | %s |\n", in.link(e.From, true), e.Relation)
			}
		}
	}
	b.WriteString("\n## Consumer groups\n\n")
	if in.Stats {
		b.WriteString("Lag is the time from the producer span's start to the consumer span's start.\n\n")
		b.WriteString("| group | service | relation | records | error rate | lag p50 | lag p95 | lag p99 |\n|---|---|---|---:|---:|---:|---:|---:|\n")
	} else {
		b.WriteString("| group | service | relation |\n|---|---|---|\n")
	}
	for _, e := range g.Edges {
		if e.From == n && e.Kind == graph.EdgeConsume {
			if in.Stats {
				fmt.Fprintf(&b, "| %s | %s | %s | %d | %s | %s | %s | %s |\n", md(e.Group), in.link(e.To, true), e.Relation, e.Count, errRate(e), ms(e.P50), ms(e.P95), ms(e.P99))
			} else {
				fmt.Fprintf(&b, "| %s | %s | %s |\n", md(e.Group), in.link(e.To, true), e.Relation)
			}
		}
	}
	return []byte(b.String())
}
