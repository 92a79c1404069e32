package render

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"

	"github.com/ktrace-dev/ktrace/graph"
)

// Label is how a node is named in text output: a service by its name,
// anything else by its key ("topic:orders", "database:postgresql/shop").
func Label(n *graph.Node) string {
	if n.Kind == graph.KindService {
		return n.Name
	}
	return n.Key
}

var graphHeader = []string{"FROM", "TO", "KIND", "RELATION", "GROUP", "COUNT", "ERRORS", "P50", "P95", "P99"}

// GraphText writes the graph's edges as a table: boxed with lipgloss when
// st.TTY, else tab-separated with a header line.
func GraphText(w io.Writer, g *graph.Graph, st Style) error {
	if !st.TTY {
		var b strings.Builder
		b.WriteString(strings.Join(graphHeader, "\t"))
		b.WriteByte('\n')
		for _, e := range g.Edges {
			fmt.Fprintf(&b, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", TSV(Label(e.From)), TSV(Label(e.To)), e.Kind,
				e.Relation, TSV(e.Group), e.Count, e.Errors, millis(e.P50), millis(e.P95), millis(e.P99))
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	r := st.renderer()
	rows := make([][]string, len(g.Edges))
	for i, e := range g.Edges {
		group := e.Group
		if group == "" {
			group = "-"
		}
		rows[i] = []string{Terminal(Label(e.From)), Terminal(Label(e.To)), e.Kind.String(), e.Relation.String(), Terminal(group),
			strconv.Itoa(e.Count), strconv.Itoa(e.Errors), human(e.P50), human(e.P95), human(e.P99)}
	}
	rows = fit(graphHeader, rows, st.Width, 0, 1, 4)
	head := r.NewStyle().Bold(true).Padding(0, 1)
	cell := r.NewStyle().Padding(0, 1)
	stitched := cell.Foreground(lipgloss.Color("1"))
	t := table.New().Border(lipgloss.RoundedBorder()).BorderStyle(r.NewStyle().Faint(true)).
		Headers(graphHeader...).Rows(rows...).
		StyleFunc(func(row, col int) lipgloss.Style {
			switch {
			case row == table.HeaderRow:
				return head
			case g.Edges[row].Relation == graph.RelStitched:
				return stitched
			}
			return cell
		})
	_, err := fmt.Fprintf(w, "%s\n%s, %s, %s, %s\n", t.Render(), N(g.Traces, "trace"), N(g.Spans, "span"), N(len(g.Nodes), "node"), N(len(g.Edges), "edge"))
	return err
}

// GraphJSON is the stable JSON shape of `ktrace graph -o json`. Field names
// are a documented API: add fields, never rename or remove them.
type GraphJSON struct {
	Version  int          `json:"version"`
	Traces   int          `json:"traces"`
	Spans    int          `json:"spans"`
	Nodes    []NodeJSON   `json:"nodes"`
	Edges    []EdgeJSON   `json:"edges"`
	Stitches []StitchJSON `json:"stitches"`
}

// NodeJSON is one node.
type NodeJSON struct {
	Key        string   `json:"key"`
	Kind       string   `json:"kind"`
	Name       string   `json:"name"`
	Spans      int      `json:"spans"`
	Errors     int      `json:"errors"`
	Instances  []string `json:"instances,omitempty"`
	Operations []string `json:"operations,omitempty"`
	Partitions []int32  `json:"partitions,omitempty"`
}

// EdgeJSON is one edge. Latencies are milliseconds.
type EdgeJSON struct {
	From     string  `json:"from"`
	To       string  `json:"to"`
	Kind     string  `json:"kind"`
	Relation string  `json:"relation"`
	Group    string  `json:"group,omitempty"`
	Count    int     `json:"count"`
	Errors   int     `json:"errors"`
	P50Ms    float64 `json:"p50_ms"`
	P95Ms    float64 `json:"p95_ms"`
	P99Ms    float64 `json:"p99_ms"`
	// ClientIDs are the Kafka client ids seen (produce and consume edges).
	ClientIDs []string `json:"client_ids,omitempty"`
}

// SpanRefJSON names one span.
type SpanRefJSON struct {
	TraceID string `json:"trace_id"`
	SpanID  string `json:"span_id"`
	Service string `json:"service"`
}

// StitchJSON is one consumer paired with the producer of its record.
type StitchJSON struct {
	Kind      string      `json:"kind"`
	Topic     string      `json:"topic"`
	OutTopic  string      `json:"out_topic,omitempty"`
	Key       string      `json:"key,omitempty"`
	Partition int32       `json:"partition"`
	Offset    int64       `json:"offset"`
	MessageID string      `json:"message_id,omitempty"`
	Producer  SpanRefJSON `json:"producer"`
	Consumer  SpanRefJSON `json:"consumer"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func ref(r graph.SpanRef) SpanRefJSON {
	return SpanRefJSON{TraceID: r.TraceID.String(), SpanID: r.SpanID.String(), Service: r.Service}
}

// ToJSON converts a graph to its JSON shape.
func ToJSON(g *graph.Graph) GraphJSON {
	out := GraphJSON{Version: 1, Traces: g.Traces, Spans: g.Spans,
		Nodes: make([]NodeJSON, len(g.Nodes)), Edges: make([]EdgeJSON, len(g.Edges)), Stitches: []StitchJSON{}}
	for i, n := range g.Nodes {
		out.Nodes[i] = NodeJSON{Key: n.Key, Kind: n.Kind.String(), Name: n.Name, Spans: n.Spans, Errors: n.Errors,
			Instances: n.Instances, Operations: n.Operations, Partitions: n.Partitions}
	}
	for i, e := range g.Edges {
		out.Edges[i] = EdgeJSON{From: e.From.Key, To: e.To.Key, Kind: e.Kind.String(), Relation: e.Relation.String(),
			Group: e.Group, Count: e.Count, Errors: e.Errors, P50Ms: ms(e.P50), P95Ms: ms(e.P95), P99Ms: ms(e.P99), ClientIDs: e.ClientIDs}
	}
	for _, s := range g.Stitches {
		out.Stitches = append(out.Stitches, StitchJSON{Kind: s.Kind.String(), Topic: s.Topic, OutTopic: s.OutTopic, Key: s.Key,
			Partition: s.Partition, Offset: s.Offset,
			MessageID: s.MessageID, Producer: ref(s.Producer), Consumer: ref(s.Consumer)})
	}
	return out
}

// JSON writes v indented, with a trailing newline.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

var dotShapes = map[graph.NodeKind]string{
	graph.KindService:       `shape=box, style="rounded"`,
	graph.KindTopic:         `shape=cds, style="filled", fillcolor="#e8f0fe"`,
	graph.KindDatabase:      `shape=cylinder`,
	graph.KindPeer:          `shape=box, style="dashed"`,
	graph.KindUnknownCaller: `shape=ellipse, style="dashed"`,
}

func dotLabel(n *graph.Node) string {
	if n.Kind == graph.KindUnknownCaller {
		return "unknown caller"
	}
	return n.Name
}

// Diagram says how DOT and Mermaid draw a graph.
type Diagram struct {
	// Highlight draws the nodes with these keys in red.
	Highlight map[string]bool
	// NoCounts leaves record counts out of edge labels (for pages that
	// should change only when the topology does).
	NoCounts bool
}

func (d Diagram) edgeLabel(e *graph.Edge) string {
	if d.NoCounts {
		return e.Relation.String()
	}
	return fmt.Sprintf("%s ×%d", e.Relation, e.Count)
}

// DOT writes the graph in Graphviz DOT. Stitched edges are red and dashed,
// link edges dotted.
func DOT(w io.Writer, g *graph.Graph) error { return DOTWith(w, g, Diagram{}) }

// DOTHighlight is DOT with the nodes whose keys are in hl drawn in red.
func DOTHighlight(w io.Writer, g *graph.Graph, hl map[string]bool) error {
	return DOTWith(w, g, Diagram{Highlight: hl})
}

// DOTWith writes DOT as d says.
func DOTWith(w io.Writer, g *graph.Graph, d Diagram) error {
	hl := d.Highlight
	var b strings.Builder
	b.WriteString("digraph ktrace {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n")
	for _, n := range g.Nodes {
		extra := ""
		if hl[n.Key] {
			extra = `, color="red", penwidth=2.5, fontcolor="red"`
		}
		fmt.Fprintf(&b, "  %s [label=%s, %s%s];\n", dotQuote(n.Key), dotQuote(dotLabel(n)), dotShapes[n.Kind], extra)
	}
	for _, e := range g.Edges {
		label := dotEscape(d.edgeLabel(e))
		if e.Group != "" {
			label = dotEscape(e.Group) + `\n` + label
		}
		attrs := ""
		switch e.Relation {
		case graph.RelStitched:
			attrs = `, style="dashed", color="red", fontcolor="red"`
		case graph.RelLink:
			attrs = `, style="dotted"`
		case graph.RelUnverified:
			attrs = `, style="dashed", color="gray50", fontcolor="gray50"`
		}
		fmt.Fprintf(&b, "  %s -> %s [label=\"%s\"%s];\n", dotQuote(e.From.Key), dotQuote(e.To.Key), label, attrs)
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// Mermaid writes the graph as a Mermaid flowchart. Topics are hexagons,
// databases cylinders, virtual nodes rounded; stitched edges are red and
// dashed, link edges dashed.
func Mermaid(w io.Writer, g *graph.Graph) error { return MermaidWith(w, g, Diagram{}) }

// MermaidHighlight is Mermaid with the nodes whose keys are in hl in red.
func MermaidHighlight(w io.Writer, g *graph.Graph, hl map[string]bool) error {
	return MermaidWith(w, g, Diagram{Highlight: hl})
}

// MermaidWith writes Mermaid as d says.
func MermaidWith(w io.Writer, g *graph.Graph, d Diagram) error {
	hl := d.Highlight
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	ids := map[*graph.Node]string{}
	for i, n := range g.Nodes {
		id := "n" + strconv.Itoa(i)
		ids[n] = id
		label := mermaidText(dotLabel(n))
		switch n.Kind {
		case graph.KindTopic:
			fmt.Fprintf(&b, "  %s{{\"%s\"}}\n", id, label)
		case graph.KindDatabase:
			fmt.Fprintf(&b, "  %s[(\"%s\")]\n", id, label)
		case graph.KindService:
			fmt.Fprintf(&b, "  %s[\"%s\"]\n", id, label)
		default:
			fmt.Fprintf(&b, "  %s([\"%s\"])\n", id, label)
		}
	}
	var stitched []int
	for i, e := range g.Edges {
		label := d.edgeLabel(e)
		if e.Group != "" {
			label = e.Group + " · " + label
		}
		arrow := "-->"
		if e.Relation == graph.RelStitched || e.Relation == graph.RelLink || e.Relation == graph.RelUnverified {
			arrow = "-.->"
		}
		if e.Relation == graph.RelStitched {
			stitched = append(stitched, i)
		}
		fmt.Fprintf(&b, "  %s %s|\"%s\"| %s\n", ids[e.From], arrow, mermaidText(label), ids[e.To])
	}
	for _, i := range stitched {
		fmt.Fprintf(&b, "  linkStyle %d stroke:#d33,color:#d33\n", i)
	}
	var marked []string
	for _, n := range g.Nodes {
		if hl[n.Key] {
			marked = append(marked, ids[n])
		}
	}
	if len(marked) > 0 {
		b.WriteString("  classDef spof stroke:#d33,stroke-width:3px,color:#d33\n")
		fmt.Fprintf(&b, "  class %s spof\n", strings.Join(marked, ","))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
