package render_test

import (
	"bytes"
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/render"
)

// svgDoc is what the tests read back of render.SVG's picture.
type svgDoc struct {
	nodes map[string][4]int // key → x, y, width, height of its shape
	edges []svgEdge
}

type svgEdge struct{ title, path, stroke, dash string }

func readSVG(t *testing.T, b []byte) svgDoc {
	t.Helper()
	doc := svgDoc{nodes: map[string][4]int{}}
	dec := xml.NewDecoder(bytes.NewReader(b))
	var group, title string
	inTitle := false
	attr := func(el xml.StartElement, name string) string {
		for _, a := range el.Attr {
			if a.Name.Local == name {
				return a.Value
			}
		}
		return ""
	}
	num := func(el xml.StartElement, name string) int {
		n, _ := strconv.Atoi(attr(el, name))
		return n
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return doc
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, b)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			switch tok.Name.Local {
			case "g":
				group, title = attr(tok, "class"), ""
			case "title":
				inTitle = true
			case "rect", "ellipse", "polygon", "path":
				if group == "node" {
					switch tok.Name.Local {
					case "rect":
						doc.nodes[title] = [4]int{num(tok, "x"), num(tok, "y"), num(tok, "width"), num(tok, "height")}
					case "ellipse":
						doc.nodes[title] = [4]int{num(tok, "cx") - num(tok, "rx"), num(tok, "cy") - num(tok, "ry"), 2 * num(tok, "rx"), 2 * num(tok, "ry")}
					default:
						doc.nodes[title] = [4]int{-1, -1, -1, -1} // drawn; its place is not read back
					}
				}
				if group == "edge" && tok.Name.Local == "path" {
					doc.edges = append(doc.edges, svgEdge{title, attr(tok, "d"), attr(tok, "stroke"), attr(tok, "stroke-dasharray")})
				}
			}
		case xml.CharData:
			if inTitle {
				title += string(tok)
			}
		case xml.EndElement:
			if tok.Name.Local == "title" {
				inTitle = false
			}
		}
	}
}

func svgOf(t *testing.T, g *graph.Graph, d render.Diagram) (svgDoc, string) {
	t.Helper()
	var b bytes.Buffer
	if err := render.SVG(&b, g, d); err != nil {
		t.Fatal(err)
	}
	return readSVG(t, b.Bytes()), b.String()
}

// A fixture's graph: every node and edge drawn once, boxes apart, and
// every edge between services and topics (none of which here closes a
// cycle) running left to right; a stitched edge red and dashed.
func TestSVGFixture(t *testing.T) {
	g := fixtureGraph(t, "broken-hop")
	doc, _ := svgOf(t, g, render.Diagram{})
	if len(doc.nodes) != len(g.Nodes) || len(doc.edges) != len(g.Edges) {
		t.Fatalf("%d nodes, %d edges drawn; the graph has %d and %d", len(doc.nodes), len(doc.edges), len(g.Nodes), len(g.Edges))
	}
	for _, e := range g.Edges {
		from, to := doc.nodes[e.From.Key], doc.nodes[e.To.Key]
		if from[0] >= 0 && to[0] >= 0 && from[0]+from[2] >= to[0] {
			t.Errorf("edge %s → %s does not run left to right: %v, %v", e.From.Key, e.To.Key, from, to)
		}
	}
	for a, pa := range doc.nodes {
		for b, pb := range doc.nodes {
			if a < b && pa[0] >= 0 && pb[0] >= 0 && pa[0] < pb[0]+pb[2] && pb[0] < pa[0]+pa[2] && pa[1] < pb[1]+pb[3] && pb[1] < pa[1]+pa[3] {
				t.Errorf("%s and %s overlap: %v, %v", a, b, pa, pb)
			}
		}
	}
	stitched := 0
	for i, e := range g.Edges {
		if e.Relation == graph.RelStitched {
			stitched++
			if doc.edges[i].stroke != "red" || doc.edges[i].dash == "" {
				t.Errorf("stitched edge %s drawn %+v", doc.edges[i].title, doc.edges[i])
			}
		}
	}
	if stitched == 0 {
		t.Fatal("the fixture has no stitched edge")
	}
}

// Cycles and loops are drawn (a back edge curves below), names are
// escaped, and a highlighted node is red.
func TestSVGCyclesAndNames(t *testing.T) {
	a := &graph.Node{Key: "service:<a>&", Kind: graph.KindService, Name: "<script>alert(1)</script>"}
	b := &graph.Node{Key: "topic:t\x1b[31m", Kind: graph.KindTopic, Name: "t\x1b[31m\x00"}
	c := &graph.Node{Key: "db:x", Kind: graph.KindDatabase, Name: "x"}
	g := &graph.Graph{Nodes: []*graph.Node{a, b, c}, Edges: []*graph.Edge{
		{From: a, To: b, Kind: graph.EdgeProduce, Relation: graph.RelSpan, Count: 1},
		{From: b, To: a, Kind: graph.EdgeConsume, Relation: graph.RelParent, Count: 1, Group: `g"r`},
		{From: a, To: a, Kind: graph.EdgeCall, Relation: graph.RelParent, Count: 1},
		{From: a, To: c, Kind: graph.EdgePeer, Relation: graph.RelUnverified, Count: 1},
	}}
	doc, out := svgOf(t, g, render.Diagram{Highlight: map[string]bool{"db:x": true}})
	if len(doc.nodes) != 3 || len(doc.edges) != 4 {
		t.Fatalf("%d nodes, %d edges:\n%s", len(doc.nodes), len(doc.edges), out)
	}
	if strings.Contains(out, "<script") || strings.Contains(out, "\x1b") || strings.Contains(out, "\x00") {
		t.Errorf("a name is not escaped:\n%s", out)
	}
	if _, ok := doc.nodes["service:<a>&"]; !ok {
		t.Errorf("the node's title does not read back as its key: %v", doc.nodes)
	}
	if !strings.Contains(out, `stroke="red" stroke-width="2.5"`) {
		t.Error("the highlighted node is not red")
	}
	if doc.edges[3].stroke != "#7f7f7f" {
		t.Errorf("the unverified edge is drawn %+v", doc.edges[3])
	}
}
