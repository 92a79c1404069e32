package render

import (
	"cmp"
	"fmt"
	"html"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/ktrace-dev/ktrace/graph"
)

// SVG draws the graph as a standalone SVG picture, laid out here, left to
// right, as DOT's rankdir=LR would: each node in a column one past the
// furthest node that feeds it (edges that close a cycle are left out of
// that count and drawn curving below), nodes of a column ordered to keep
// the edges between columns short. Shapes, colours and edge styles are
// DOT's (topics filled, stitched edges red and dashed, link edges dotted,
// unverified ones grey). Every node is a <g class="node"> titled with its
// key, every edge a <g class="edge">; names are escaped for XML.
func SVG(w io.Writer, g *graph.Graph, d Diagram) error {
	l := layout(g)
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif">
<defs>
<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker>
</defs>
<rect width="100%%" height="100%%" fill="white"/>
`, l.width, l.height, l.width, l.height)
	for _, e := range g.Edges {
		svgEdge(&b, l, e, d)
	}
	for _, n := range g.Nodes {
		svgNode(&b, l.boxes[n], n, d.Highlight[n.Key])
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// svgText escapes a name for XML text and attributes, with what cannot be
// seen or is not allowed in XML spelled out first.
func svgText(s string) string { return html.EscapeString(visible(s, false)) }

// Sizes in pixels.
const (
	svgMargin    = 24
	svgBoxHeight = 36
	svgRowGap    = 40  // between nodes of a column
	svgColumnGap = 150 // between columns, room for edge labels
	svgCharWidth = 7   // of 12px Helvetica, about
)

// box is a node's place.
type box struct{ x, y, w, h, column int }

type svgLayout struct {
	boxes         map[*graph.Node]box
	width, height int
}

// layout places the nodes: columns by the longest path into each node,
// order within a column by the mean place of each node's neighbours, in
// a few sweeps.
func layout(g *graph.Graph) svgLayout {
	nodes := slices.Clone(g.Nodes)
	slices.SortFunc(nodes, func(a, b *graph.Node) int { return cmp.Compare(a.Key, b.Key) })
	out := map[*graph.Node][]*graph.Node{}
	in := map[*graph.Node][]*graph.Node{}
	for _, e := range g.Edges {
		if e.From != e.To {
			out[e.From] = append(out[e.From], e.To)
			in[e.To] = append(in[e.To], e.From)
		}
	}
	back := backEdges(nodes, out)
	column := map[*graph.Node]int{}
	// Longest path in the graph without its back edges (a DAG): a node's column
	// is one past its furthest forward predecessor's.
	var place func(n *graph.Node) int
	place = func(n *graph.Node) int {
		if c, ok := column[n]; ok {
			return c
		}
		c := 0
		for _, p := range in[n] {
			if !back[[2]*graph.Node{p, n}] {
				c = max(c, place(p)+1)
			}
		}
		column[n] = c
		return c
	}
	for _, n := range nodes {
		place(n)
	}
	// A node nothing feeds (an unknown caller, an origin of data) sits
	// just before the nearest node it feeds, not in the first column.
	for _, n := range nodes {
		if len(in[n]) > 0 || len(out[n]) == 0 {
			continue
		}
		nearest := -1
		for _, m := range out[n] {
			if !back[[2]*graph.Node{n, m}] && (nearest < 0 || column[m] < nearest) {
				nearest = column[m]
			}
		}
		column[n] = max(column[n], nearest-1)
	}
	columns := [][]*graph.Node{}
	for _, n := range nodes {
		c := column[n]
		for len(columns) <= c {
			columns = append(columns, nil)
		}
		columns[c] = append(columns[c], n)
	}
	order := map[*graph.Node]float64{}
	for _, col := range columns {
		for i, n := range col {
			order[n] = float64(i)
		}
	}
	// Sweeps down (each column by its feeders, left to right) and up (by
	// what it feeds, right to left), ending with one down.
	arrange := func(c int, neighbours map[*graph.Node][]*graph.Node) {
		col := columns[c]
		mean := map[*graph.Node]float64{}
		for _, n := range col {
			mean[n] = order[n]
			if k := len(neighbours[n]); k > 0 {
				sum := 0.0
				for _, m := range neighbours[n] {
					sum += order[m]
				}
				mean[n] = sum / float64(k)
			}
		}
		slices.SortStableFunc(col, func(a, b *graph.Node) int { return cmp.Compare(mean[a], mean[b]) })
		for i, n := range col {
			order[n] = float64(i)
		}
	}
	for sweep := 0; sweep < 4; sweep++ {
		for c := 1; c < len(columns); c++ {
			arrange(c, in)
		}
		if sweep < 3 {
			for c := len(columns) - 2; c >= 0; c-- {
				arrange(c, out)
			}
		}
	}
	l := svgLayout{boxes: map[*graph.Node]box{}}
	tallest := 0
	for _, col := range columns {
		tallest = max(tallest, len(col))
	}
	x := svgMargin
	for c, col := range columns {
		w := 0
		for _, n := range col {
			w = max(w, boxWidth(n))
		}
		// Columns are centred on the tallest.
		y := svgMargin + (tallest-len(col))*(svgBoxHeight+svgRowGap)/2
		for _, n := range col {
			bw := boxWidth(n)
			l.boxes[n] = box{x: x + (w-bw)/2, y: y, w: bw, h: svgBoxHeight, column: c}
			y += svgBoxHeight + svgRowGap
		}
		x += w + svgColumnGap
	}
	l.width = max(x-svgColumnGap+svgMargin, 2*svgMargin)
	// Room below for edges that curve back.
	l.height = svgMargin*2 + max(tallest, 1)*(svgBoxHeight+svgRowGap) + svgRowGap
	return l
}

// backEdges finds, by depth-first search from the nodes in order, the
// edges that close a cycle.
func backEdges(nodes []*graph.Node, out map[*graph.Node][]*graph.Node) map[[2]*graph.Node]bool {
	back := map[[2]*graph.Node]bool{}
	state := map[*graph.Node]int{} // 1 on the path, 2 done
	var visit func(n *graph.Node)
	visit = func(n *graph.Node) {
		state[n] = 1
		for _, m := range out[n] {
			switch state[m] {
			case 0:
				visit(m)
			case 1:
				back[[2]*graph.Node{n, m}] = true
			}
		}
		state[n] = 2
	}
	for _, n := range nodes {
		if state[n] == 0 {
			visit(n)
		}
	}
	return back
}

func boxWidth(n *graph.Node) int {
	w := utf8.RuneCountInString(visible(dotLabel(n), false))*svgCharWidth + 28
	if n.Kind == graph.KindTopic {
		w += 16 // the arrow's point
	}
	return w
}

func svgNode(b *strings.Builder, p box, n *graph.Node, highlight bool) {
	stroke, width, text := "black", "1", "black"
	if highlight {
		stroke, width, text = "red", "2.5", "red"
	}
	fmt.Fprintf(b, `<g class="node" id="node-%s"><title>%s</title>`+"\n", svgText(n.Key), svgText(n.Key))
	common := fmt.Sprintf(`stroke="%s" stroke-width="%s"`, stroke, width)
	x, y, w, h := p.x, p.y, p.w, p.h
	switch n.Kind {
	case graph.KindService:
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" rx="8" fill="white" %s/>`+"\n", x, y, w, h, common)
	case graph.KindTopic:
		fmt.Fprintf(b, `<polygon points="%d,%d %d,%d %d,%d %d,%d %d,%d" fill="#e8f0fe" %s/>`+"\n",
			x, y, x+w-16, y, x+w, y+h/2, x+w-16, y+h, x, y+h, common)
	case graph.KindDatabase:
		fmt.Fprintf(b, `<path d="M%d,%d v%d a%d,6 0 0 0 %d,0 v%d a%d,6 0 0 0 %d,0 a%d,6 0 0 0 %d,0" fill="white" %s/>`+"\n",
			x, y+6, h-12, w/2, w, -(h - 12), w/2, -w, w/2, w, common)
	case graph.KindPeer:
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="white" stroke-dasharray="5,3" %s/>`+"\n", x, y, w, h, common)
	default:
		fmt.Fprintf(b, `<ellipse cx="%d" cy="%d" rx="%d" ry="%d" fill="white" stroke-dasharray="5,3" %s/>`+"\n", x+w/2, y+h/2, w/2, h/2, common)
	}
	tx := x + w/2
	if n.Kind == graph.KindTopic {
		tx -= 8
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="12" text-anchor="middle" fill="%s">%s</text>`+"\n</g>\n", tx, y+h/2+4, text, svgText(dotLabel(n)))
}

func svgEdge(b *strings.Builder, l svgLayout, e *graph.Edge, d Diagram) {
	from, to := l.boxes[e.From], l.boxes[e.To]
	colour, dash := "black", ""
	switch e.Relation {
	case graph.RelStitched:
		colour, dash = "red", ` stroke-dasharray="6,4"`
	case graph.RelLink:
		dash = ` stroke-dasharray="2,3"`
	case graph.RelUnverified:
		colour, dash = "#7f7f7f", ` stroke-dasharray="6,4"`
	}
	// A cubic Bézier curve p[0] … p[3].
	var p [4][2]int
	switch {
	case e.From == e.To: // a loop over the node's top
		x, y := from.x+from.w/2, from.y
		p = [4][2]int{{x - 10, y}, {x - 30, y - 40}, {x + 30, y - 40}, {x + 10, y}}
	case to.column > from.column: // forward, right side to left side
		x1, y1, x2, y2 := from.x+from.w, from.y+from.h/2, to.x, to.y+to.h/2
		dx := (x2 - x1) / 2
		p = [4][2]int{{x1, y1}, {x1 + dx, y1}, {x2 - dx, y2}, {x2, y2}}
	default: // backward or within a column: bottom to bottom, curving below
		x1, y1, x2, y2 := from.x+from.w/2, from.y+from.h, to.x+to.w/2, to.y+to.h
		low := max(y1, y2) + svgRowGap
		p = [4][2]int{{x1, y1}, {x1, low}, {x2, low}, {x2, y2}}
	}
	path := fmt.Sprintf("M%d,%d C%d,%d %d,%d %d,%d", p[0][0], p[0][1], p[1][0], p[1][1], p[2][0], p[2][1], p[3][0], p[3][1])
	// The label sits on the curve nearer its end than its start, where
	// edges into one node have not met yet and edges out of one have
	// parted.
	lx, ly := bezier(p, 0.7)
	ly -= 4
	label := d.edgeLabel(e)
	if e.Group != "" {
		label = e.Group + " · " + label
	}
	fmt.Fprintf(b, `<g class="edge"><title>%s → %s</title>`+"\n"+`<path d="%s" fill="none" stroke="%s"%s marker-end="url(#arrow)"/>`+"\n",
		svgText(e.From.Key), svgText(e.To.Key), path, colour, dash)
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="10" text-anchor="middle" fill="%s">%s</text>`+"\n</g>\n", lx, ly, colour, svgText(label))
}

// bezier is the point at t along the cubic Bézier curve p.
func bezier(p [4][2]int, t float64) (int, int) {
	u := 1 - t
	w := [4]float64{u * u * u, 3 * u * u * t, 3 * u * t * t, t * t * t}
	var x, y float64
	for i := range p {
		x += w[i] * float64(p[i][0])
		y += w[i] * float64(p[i][1])
	}
	return int(x + 0.5), int(y + 0.5)
}
