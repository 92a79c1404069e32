package render

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
)

// mapScript is the map's script, built by scripts/build-map from
// mapjs/map.js and npm packages (mapjs/THIRD_PARTY.md).
//
//go:embed mapjs/map.bundle.js
var mapScript string

// MapData is what the interactive map draws, embedded in the page as JSON.
type MapData struct {
	Title string `json:"title"`
	UI    string `json:"ui,omitempty"`
	// NoStats leaves counts, errors, percentiles, continuity and example
	// traces out, for pages that change only when the topology does.
	NoStats bool `json:"noStats,omitempty"`
	// Live, in seconds, makes a served page ask the server for data.json
	// that often and reload when its Version changed (ktrace serve).
	Live    int            `json:"live,omitempty"`
	Version string         `json:"version,omitempty"`
	Nodes   []mapNode      `json:"nodes"`
	Edges   []mapEdge      `json:"edges"`
	Breaks  []mapHighlight `json:"breaks"`
	SPOF    []mapSPOF      `json:"spof"`
}

// mapNode is a node as -o json gives it, with what the map adds.
type mapNode struct {
	NodeJSON
	Label   string   `json:"label"`
	Virtual bool     `json:"virtual,omitempty"`
	Groups  []string `json:"groups,omitempty"`
}

// mapEdge is an edge as -o json gives it, with what the map adds.
type mapEdge struct {
	EdgeJSON
	FromLabel string   `json:"fromLabel"`
	ToLabel   string   `json:"toLabel"`
	Examples  []string `json:"examples,omitempty"`
	// Continuity is the share of the hop's records (all relations of one
	// from → to, group) that continue the trace; absent on call edges and
	// on origins.
	Continuity *float64 `json:"continuity,omitempty"`
}

type mapHighlight struct {
	Rule  string   `json:"rule"`
	Where string   `json:"where"`
	Nodes []string `json:"nodes"`
}

type mapSPOF struct {
	Node  string   `json:"node"`
	Risks string   `json:"risks"`
	Blast int      `json:"blast"`
	Nodes []string `json:"nodes"`
}

// ToMap gathers what the map draws. ui, when a valid http(s) URL, links
// example traces to the Jaeger UI.
func ToMap(g *graph.Graph, rep analyze.Report, spof analyze.SPOFReport, ui string) MapData {
	d := MapData{Title: "ktrace service map", Nodes: []mapNode{}, Edges: []mapEdge{}, Breaks: []mapHighlight{}, SPOF: []mapSPOF{}}
	if u, err := url.Parse(ui); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		d.UI = ui
	}
	groups := map[*graph.Node][]string{}
	type hop struct {
		from, to *graph.Node
		group    string
	}
	seen, cont := map[hop]int{}, map[hop]int{}
	for _, e := range g.Edges {
		if e.Kind == graph.EdgeConsume {
			if !slices.Contains(groups[e.From], e.Group) {
				groups[e.From] = append(groups[e.From], e.Group)
			}
		}
		// As check counts it: a consumer with no producer to compare with,
		// or whose producer is not in the data, is left out.
		if e.Kind != graph.EdgeCall && !(e.Kind == graph.EdgeConsume && (e.Relation == graph.RelSpan || e.Relation == graph.RelUnverified)) {
			h := hop{e.From, e.To, e.Group}
			seen[h] += e.Count
			if e.Relation == graph.RelParent || e.Relation == graph.RelLink {
				cont[h] += e.Count
			}
		}
	}
	j := ToJSON(g)
	for i, n := range g.Nodes {
		// Labels are drawn on a canvas: control and format characters, and
		// bytes that are not UTF-8, are spelled out (Chromium's renderer
		// was seen to crash drawing some of them).
		d.Nodes = append(d.Nodes, mapNode{NodeJSON: j.Nodes[i], Label: Terminal(dotLabel(n)),
			Virtual: n.Kind != graph.KindService && n.Kind != graph.KindTopic, Groups: groups[n]})
	}
	for i, e := range g.Edges {
		me := mapEdge{EdgeJSON: j.Edges[i], FromLabel: Terminal(dotLabel(e.From)), ToLabel: Terminal(dotLabel(e.To))}
		if h := (hop{e.From, e.To, e.Group}); seen[h] > 0 && (e.Kind == graph.EdgeConsume || e.Relation != graph.RelSpan) {
			c := float64(cont[h]) / float64(seen[h])
			me.Continuity = &c
		}
		if e.Relation == graph.RelStitched {
			me.Examples = stitchExamples(g, e)
		}
		d.Edges = append(d.Edges, me)
	}
	for _, f := range rep.Findings {
		var nodes []string
		if f.Service != "" {
			nodes = append(nodes, "service:"+f.Service)
		}
		if f.Topic != "" {
			nodes = append(nodes, "topic:"+f.Topic)
		}
		for _, x := range f.From {
			if g.Node("topic:"+x) != nil {
				nodes = append(nodes, "topic:"+x)
			} else {
				nodes = append(nodes, "service:"+x)
			}
		}
		d.Breaks = append(d.Breaks, mapHighlight{Rule: string(f.Rule), Where: f.Where, Nodes: nodes})
	}
	for _, n := range spof.ByNode() {
		d.SPOF = append(d.SPOF, mapSPOF{Node: n.Node, Risks: strings.Join(n.Kinds, ", "), Blast: len(n.Blast), Nodes: []string{n.Node}})
	}
	return d
}

// stitchExamples are up to five traces where the stitched edge e broke.
func stitchExamples(g *graph.Graph, e *graph.Edge) []string {
	var out []string
	for _, s := range g.Stitches {
		var id string
		switch {
		case s.Kind == graph.StitchPassThrough && e.Kind == graph.EdgeProduce && s.Producer.Service == e.From.Name && s.OutTopic == e.To.Name:
			id = s.Producer.TraceID.String()
		case s.Kind != graph.StitchPassThrough && e.Kind == graph.EdgeConsume && s.Topic == e.From.Name && s.Consumer.Service == e.To.Name && s.Group == e.Group:
			id = s.Consumer.TraceID.String()
		default:
			continue
		}
		if !slices.Contains(out, id) {
			if out = append(out, id); len(out) == 5 {
				break
			}
		}
	}
	return out
}

// WithoutStats is d with what changes from one set of traces to the next
// taken out.
func (d MapData) WithoutStats() MapData {
	d.NoStats = true
	nodes := make([]mapNode, len(d.Nodes))
	for i, n := range d.Nodes {
		n.Spans, n.Errors = 0, 0
		nodes[i] = n
	}
	edges := make([]mapEdge, len(d.Edges))
	for i, e := range d.Edges {
		e.Count, e.Errors, e.P50Ms, e.P95Ms, e.P99Ms, e.Examples, e.Continuity = 0, 0, 0, 0, 0, nil, nil
		edges[i] = e
	}
	d.Nodes, d.Edges = nodes, edges
	return d
}

// HTML writes the interactive service map as one self-contained page: its
// script and style are inside it, and its Content-Security-Policy lets it
// load nothing from anywhere, so it opens from disk with no network. Names
// travel as JSON inside a script element (encoding/json escapes <, > and
// &, so no name can end the element) and the script puts them on the page
// as text only.
func HTML(w io.Writer, d MapData) error {
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	connect := "" // a page from disk talks to nothing
	if d.Live > 0 {
		connect = " connect-src 'self';" // a served page asks its server for data.json
	}
	if _, err := fmt.Fprintf(w, htmlPage, connect, htmlEscape(d.Title), data); err != nil {
		return err
	}
	if _, err := io.WriteString(w, strings.ReplaceAll(mapScript, "</script", `<\/script`)); err != nil {
		return err
	}
	_, err = io.WriteString(w, "\n</script>\n</body>\n</html>\n")
	return err
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

const htmlPage = `<!doctype html>
<html lang="en" data-theme="light">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none';%s script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%s</title>
<style>
:root { --bg: #fff; --panel: #f6f7f9; --text: #1d2127; --muted: #5b6470; --node: #e8eefc; --topic: #fdf0d5; --border: #7a8799; --edge: #8b96a5; }
[data-theme="dark"] { --bg: #15181d; --panel: #1d2128; --text: #e4e8ee; --muted: #9aa4b2; --node: #24324d; --topic: #4a3c1c; --border: #8594aa; --edge: #7c8796; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: var(--bg); color: var(--text); display: grid; grid-template-columns: 1fr 360px; grid-template-rows: auto 1fr; height: 100vh; }
header { grid-column: 1 / 3; display: flex; gap: 12px; align-items: center; padding: 8px 12px; border-bottom: 1px solid var(--border); }
header h1 { font-size: 15px; margin: 0 12px 0 0; }
input[type=search] { flex: 0 1 280px; padding: 4px 8px; background: var(--panel); color: var(--text); border: 1px solid var(--border); border-radius: 4px; }
button { background: var(--panel); color: var(--text); border: 1px solid var(--border); border-radius: 4px; padding: 3px 8px; cursor: pointer; text-align: left; }
#cy { min-height: 0; }
aside { overflow: auto; padding: 10px 12px; background: var(--panel); border-left: 1px solid var(--border); }
aside h2 { font-size: 15px; margin: 4px 0 8px; overflow-wrap: anywhere; }
aside h3 { font-size: 13px; margin: 14px 0 6px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
aside ul { list-style: none; padding: 0; margin: 0; }
aside li { margin: 3px 0; }
aside li button { width: 100%%; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%%; }
th { text-align: left; color: var(--muted); font-weight: normal; padding: 2px 8px 2px 0; white-space: nowrap; vertical-align: top; }
td { padding: 2px 0; overflow-wrap: anywhere; }
a { color: #3b82f6; }
.legend { color: var(--muted); font-size: 12px; margin-left: auto; }
</style>
</head>
<body>
<header>
<h1>ktrace service map</h1>
<input id="search" type="search" placeholder="search services and topics" aria-label="search services and topics">
<label><input id="peers" type="checkbox" checked> virtual peers</label>
<button id="theme" type="button">light / dark</button>
<span class="legend">topics are barrels · red dashed: trace context lost · grey dashed: the other end is not in the data · dotted: span link · width: records</span>
</header>
<div id="cy"></div>
<aside>
<div id="details"><h2>Click a service, topic or hop</h2></div>
<h3>Where traces break</h3>
<ul id="breaks"></ul>
<h3>Single points of failure</h3>
<ul id="spof"></ul>
</aside>
<script type="application/json" id="ktrace-data">%s</script>
<script>
/* The map: ktrace's render/mapjs/map.js with cytoscape, cytoscape-dagre, dagre, graphlib and lodash (MIT licence; see THIRD_PARTY.md in ktrace's render/mapjs). */
`
